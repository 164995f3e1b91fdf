"""Reminder offsets (SPEC §5): ``14d``, ``2w``, ``3wd`` (working days), ``2h``, ``0d``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scheduler.dates import shorten

OffsetUnit = Literal["d", "w", "wd", "h"]
_OFFSET = re.compile(r"(\d{1,6})\s*(wd|d|w|h)")  # a million days is far enough


@dataclass(frozen=True, slots=True, order=True)
class Offset:
    """How long before the day (or, for ``h``, the start time) a reminder fires."""

    amount: int
    unit: OffsetUnit
    text: str  # as written, e.g. "3d": reported in `mocd reminders` and stored in the outbox

    @property
    def days(self) -> int:
        """Calendar days before the day (``d``/``w``); 0 for ``wd``/``h``."""
        return self.amount * (7 if self.unit == "w" else 1) if self.unit in ("d", "w") else 0

    def __str__(self) -> str:
        return self.text


def parse_offset(text: str) -> Offset:
    compact = text.strip().lower().replace(" ", "")
    m = _OFFSET.fullmatch(compact)
    if not m:
        raise ValueError(
            f"expected a reminder offset like 14d, 2w, 3wd (working days), 2h or 0d, "
            f"got '{shorten(text)}'")
    unit: OffsetUnit = "wd" if m[2] == "wd" else "w" if m[2] == "w" else "h" if m[2] == "h" else "d"
    return Offset(int(m[1]), unit, compact)
