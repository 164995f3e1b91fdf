"""Feed tokens: the secret, per-purpose keys, token derivation, generations and rotation.

A feed URL carries a token so that only the unit it was given to can read its feed
(SPEC §6). No token is stored anywhere: a token is derived,

    token = base64url(HMAC-SHA256(K_feed, scope ‖ subject ‖ generation)[:24])   (192 bits)

where ``K_feed`` is derived from the instance secret (``{state_dir}/secret.key``, or the
``secret_key`` setting shared by instances on one PostgreSQL database) and
``generation`` is the only thing the database keeps (table ``feed_tokens``). So a
copy of the database reveals no feed URL, every instance computes the same tokens, and
rotating a token is ``generation += 1``, which invalidates the old one everywhere.

Scopes: ``unit`` (a unit's feed), ``campaign`` (a campaign's), ``admin`` (subject
``all``: the feed of everything). A subject without a row is at generation 1, which is
what the first apply writes, so ``mocd tokens list`` can print the URLs even before
the daemon has run.

:func:`derive_key` gives other features their own keys from the same secret (issue 5:
signed confirmation links), so a token of one kind is never valid as another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from config.errors import RuntimeFailure
from config.settings import Settings
from scheduler.database import transaction
from scheduler.models import FeedToken

log = logging.getLogger("mocd.tokens")

Scope = Literal["unit", "campaign", "admin"]
SCOPES: tuple[Scope, ...] = ("unit", "campaign", "admin")
ADMIN_SUBJECT = "all"
SECRET_FILE = "secret.key"
SECRET_BYTES = 32
TOKEN_BYTES = 24  # 192 bits; 32 URL-safe characters
TOKEN_LENGTH = 32
FEED_PURPOSE = "feed-token"


# -- the secret and derived keys ----------------------------------------------------------


def secret_path(state_dir: Path) -> Path:
    return state_dir / SECRET_FILE


def load_secret(settings: Settings) -> bytes:
    """The instance secret: the ``secret_key`` setting, else ``{state_dir}/secret.key``.

    The file is created on first use (32 random bytes, mode 0600). Creation is atomic
    and race-free: the bytes go to a private temporary file that is then hard-linked
    to the final name, which fails if another process (the daemon and ``mocd tokens``
    starting together) won the race; then its secret is read instead.
    """
    configured = settings.secret_key.get_secret_value().strip()
    if configured:
        return configured.encode("utf-8")
    return _secret_file(secret_path(settings.state_dir))


def _secret_file(path: Path) -> bytes:
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(SECRET_BYTES))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(temporary, path)
                log.info("created a new secret in %s (feed tokens derive from it: keep it, "
                         "and back it up with the database)", path)
            except FileExistsError:
                pass  # another process was first: use its secret
        finally:
            temporary.unlink(missing_ok=True)
        return _read_secret(path)
    except OSError as exc:
        raise RuntimeFailure(f"cannot create the secret {path}: {exc.strerror}") from None


def _read_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RuntimeFailure(f"cannot read the secret {path}: {exc.strerror}") from None
    if len(data) < SECRET_BYTES:
        raise RuntimeFailure(f"{path} holds {len(data)} bytes, fewer than {SECRET_BYTES}: "
                             "restore it from a backup (or delete it to make a new one, "
                             "which changes every feed URL)")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    return data


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 256-bit key for one purpose (``feed-token``, ``confirm-link``, …) from the secret.

    HMAC-SHA256 keyed with the secret over a fixed label and the purpose: keys of two
    purposes are independent, so a value signed for one purpose never verifies for
    another, and the secret itself is never used directly.
    """
    if not purpose or "\0" in purpose:
        raise ValueError("a key purpose is a non-empty label without NUL")
    return hmac.new(secret, b"mocd key derivation\0" + purpose.encode("utf-8"),
                    hashlib.sha256).digest()


# -- tokens -------------------------------------------------------------------------------


def derive_token(key: bytes, scope: str, subject: str, generation: int) -> str:
    """The token of (scope, subject) at ``generation``: 32 URL-safe characters."""
    message = f"{scope}\0{subject}\0{generation}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii")  # 24 bytes: no padding


GenerationKey = tuple[str, str]


class FeedTokens:
    """Tokens of every feed, in memory: the server verifies without touching the database.

    ``generations`` maps (scope, subject) to the current generation; a missing entry is
    generation 1. The mapping is replaced whole (:meth:`update`), never mutated, so the
    event loop may read it while a worker thread loads a new one.
    """

    def __init__(self, key: bytes, generations: Mapping[GenerationKey, int] | None = None
                 ) -> None:
        self._key = key
        self._generations: Mapping[GenerationKey, int] = dict(generations or {})

    @classmethod
    def from_settings(cls, settings: Settings,
                      generations: Mapping[GenerationKey, int] | None = None) -> FeedTokens:
        return cls(derive_key(load_secret(settings), FEED_PURPOSE), generations)

    @property
    def generations(self) -> Mapping[GenerationKey, int]:
        return self._generations

    def update(self, generations: Mapping[GenerationKey, int]) -> None:
        self._generations = dict(generations)

    def generation(self, scope: str, subject: str) -> int:
        return self._generations.get((scope, subject), 1)

    def token(self, scope: str, subject: str) -> str:
        return derive_token(self._key, scope, subject, self.generation(scope, subject))

    def verify(self, scope: str, subject: str, token: str) -> bool:
        """Whether ``token`` is the current token of (scope, subject).

        The same work whatever the subject: the expected token is derived for known
        and unknown subjects alike (an unknown one at generation 1) and compared with
        :func:`hmac.compare_digest`, so neither the time nor the answer tells whether
        a unit exists.
        """
        expected = self.token(scope, subject).encode("ascii")
        return hmac.compare_digest(expected, token.encode("utf-8", "surrogateescape"))


# -- generations in the database ----------------------------------------------------------


def feed_subjects(units: Iterable[str], campaigns: Iterable[str]) -> list[GenerationKey]:
    """Every (scope, subject) that has a feed: the units, the campaigns and the admin."""
    return ([("unit", u) for u in units] + [("campaign", c) for c in campaigns]
            + [("admin", ADMIN_SUBJECT)])


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def ensure_generations(factory: sessionmaker[Session], subjects: Iterable[GenerationKey],
                       now: datetime) -> int:
    """Create generation 1 for subjects that have none (after every apply); returns how many.

    ``INSERT … ON CONFLICT DO NOTHING``: existing (possibly rotated) generations stay,
    and instances applying at the same time cannot collide.
    """
    rows = [{"scope": scope, "subject": subject, "generation": 1, "created_at": now,
             "rotated_at": None} for scope, subject in subjects]
    added = 0
    with transaction(factory) as session:
        known = {(s, j) for s, j in session.execute(select(FeedToken.scope,
                                                           FeedToken.subject))}
        missing = [r for r in rows if (r["scope"], r["subject"]) not in known]
        insert = postgresql_insert if _dialect(session) == "postgresql" else sqlite_insert
        for start in range(0, len(missing), 2000):
            statement = insert(FeedToken).values(missing[start:start + 2000])
            result = session.execute(statement.on_conflict_do_nothing(
                index_elements=["scope", "subject"]).returning(FeedToken.subject))
            added += len(result.all())
    return added


def load_generations(factory: sessionmaker[Session]) -> dict[GenerationKey, int]:
    with factory() as session:
        return {(scope, subject): generation for scope, subject, generation in session.execute(
            select(FeedToken.scope, FeedToken.subject, FeedToken.generation))}


@dataclass(frozen=True)
class GenerationsVersion:
    """A cheap summary that changes whenever a generation is added or rotated."""

    count: int
    total: int


def generations_version(factory: sessionmaker[Session]) -> GenerationsVersion:
    with factory() as session:
        count, total = session.execute(select(
            func.count(), func.coalesce(func.sum(FeedToken.generation), 0))).one()
    return GenerationsVersion(int(count), int(total))


def rotate(factory: sessionmaker[Session], scope: Scope, subject: str, now: datetime) -> int:
    """Invalidate the token of (scope, subject); returns the new generation.

    One atomic upsert (``generation = generation + 1``), so two rotations at once both
    count and a subject without a row (never applied) goes from the implicit 1 to 2.
    """
    with transaction(factory) as session:
        insert = postgresql_insert if _dialect(session) == "postgresql" else sqlite_insert
        statement = insert(FeedToken).values(
            scope=scope, subject=subject, generation=2, created_at=now, rotated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=["scope", "subject"],
            set_={"generation": FeedToken.generation + 1, "rotated_at": now})
        return session.execute(statement.returning(FeedToken.generation)).scalar_one()


# -- URLs ---------------------------------------------------------------------------------


def feed_path(scope: Scope, subject: str, token: str | None) -> str:
    """The server path of a feed; ``token=None`` gives the public (token-less) path."""
    tail = f"/{token}.ics" if token is not None else ".ics"
    if scope == "admin":
        return f"/feeds/all{tail}"
    if scope == "campaign":
        return f"/feeds/campaign/{subject}{tail}"
    return f"/feeds/{subject}{tail}"


def feed_url(public_url: str, scope: Scope, subject: str, token: str | None) -> str:
    return public_url.rstrip("/") + feed_path(scope, subject, token)


def webcal_url(url: str) -> str:
    """The ``webcal://`` form of an http(s) URL: one click subscribes in most clients."""
    for prefix in ("https://", "http://"):
        if url.startswith(prefix):
            return "webcal://" + url[len(prefix):]
    return url
