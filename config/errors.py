"""User errors: what the CLI prints as one line, never as a traceback.

Tracebacks are for bugs. Anything an admin or operator can cause (a bad config,
a missing directory, a bad setting) is a :class:`UserError`; configuration
problems carry every :class:`Diagnostic` found so that one run of ``mocd check``
shows them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PathPart = str | int
Path = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """``("campaigns", 0, "when")`` → ``campaigns[0].when`` (the form admins read in errors)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(file)"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file, at a YAML path.

    ``line == 0`` means "not located yet": positions are computed only for the
    diagnostics there are, by :func:`config.yaml_reader.locate`. ``at_key``
    points at the key (unknown or duplicate keys) rather than at its value.
    """

    file: str
    path: Path
    message: str
    line: int = 0
    column: int = 0
    at_key: bool = False

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {format_path(self.path)}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)


class UserError(Exception):
    """An error caused by input; the CLI prints ``str(error)`` and exits with ``exit_code``."""

    exit_code = 1


class UsageError(UserError):
    """Wrong command-line use (exit 2)."""

    exit_code = 2


class RuntimeFailure(UserError):
    """The environment failed (database unreachable, disk full): exit 3, one line."""

    exit_code = 3


class ConfigError(UserError):
    """The milestone config is invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'title'?)`` for the closest candidate, or nothing."""
    import difflib

    pool = sorted(set(candidates))
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" (did you mean '{close[0]}'?)" if close else ""
