"""Timeline: number exchanges in arrival order and note which ones overlapped in time."""

from __future__ import annotations


class Timeline:
    def __init__(self) -> None:
        self._next = 1
        self._in_flight: dict[int, set[int]] = {}

    def begin(self) -> int:
        """A new exchange arrived; returns its number (1, 2, ... in arrival order)."""
        number = self._next
        self._next += 1
        for others in self._in_flight.values():
            others.add(number)
        self._in_flight[number] = set(self._in_flight)
        return number

    def end(self, number: int) -> list[int]:
        """The exchange finished; returns every exchange that was in flight alongside it."""
        return sorted(self._in_flight.pop(number, ()))
