"""A set of text spans that answers "does this span overlap any of them?" in log time.

The recognisers remember what they have already read (dates taken by a longer
phrase, items drafted, the header's date) and skip whatever overlaps it. A
list scanned for each question made that quadratic in the number of dates: a
4 MB plan has tens of thousands. Spans are kept merged and sorted instead.

Overlap means what it meant with the list: ``(s, e)`` overlaps ``(a, b)`` when
``s < b and a < e``. For non-empty spans that is an intersection of
``[s, e)`` and ``[a, b)``, which the union of the spans answers as well as the
spans themselves, provided spans that only touch are not merged (an empty span
on their border overlaps neither). Empty spans added to the set are points
that overlap a span strictly around them; they are kept apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class Spans:
    """Merged, sorted ``[start, end)`` spans (see the module docstring)."""

    def __init__(self, spans: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._points: list[int] = []
        for start, end in spans:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            if end == start:
                bisect.insort(self._points, start)
            return
        # Pieces that overlap [start, end) strictly (touching ones stay apart).
        first = bisect.bisect_right(self._ends, start)  # the first piece ending after start
        last = bisect.bisect_left(self._starts, end)  # pieces from here on start at or after end
        if first < last:
            start = min(start, self._starts[first])
            end = max(end, self._ends[last - 1])
        self._starts[first:last] = [start]
        self._ends[first:last] = [end]

    def overlaps(self, start: int, end: int) -> bool:
        """Whether ``(start, end)`` overlaps a span of the set (``start < b and a < end``)."""
        if start < end:
            i = bisect.bisect_right(self._ends, start)  # the first piece with b > start
            if i < len(self._starts) and self._starts[i] < end:
                return True
            j = bisect.bisect_right(self._points, start)  # a point strictly inside
            return j < len(self._points) and self._points[j] < end
        if start == end:
            i = bisect.bisect_right(self._ends, start)
            return i < len(self._starts) and self._starts[i] < start
        return False
