"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, on a port the OS picks."""

from __future__ import annotations

from aiosmtpd.controller import Controller


class LocalController(Controller):
    """aiosmtpd's Controller on port 0.

    aiosmtpd 1.4 connects to ``self.port`` once to check the server is up; with
    port 0 that fails (aio-libs/aiosmtpd#388), so read the bound port first.
    """

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
