"""Which number was activated for which service, and when: the lease engine's memory of it. I/O-free.

The marketplace's rule "a number activated for a service is not leased for that service again (for
ever, or for the supplier's cool-down)" needs the whole history, so the store keeps all of it
(table ``activations``) and this class holds a bounded part in memory:

* with a cool-down, an entry older than the cool-down decides nothing: each :meth:`record` drops
  up to two such entries, oldest first, so the history shrinks to what the cool-down covers;
* at ``capacity`` entries, the entry written longest ago is dropped; from then on a question the
  memory cannot answer goes to ``lookup`` (the store), so every answer is still the whole
  history's. The daemon always gives a lookup; without one (unit tests, tools) nothing is
  dropped for capacity.

Times are engine times, as the lease engine's. Changes are journaled (:class:`JournaledDict`), so
the engine's per-transaction snapshot costs what one transaction changed, not the history's size.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.journal import JournaledDict

Lookup = Callable[[str, str], "float | None"]  # (number, service) -> engine time of the last activation
DEFAULT_CAPACITY = 100_000  # ~25 MB of entries; the store answers beyond
_PRUNE_PER_RECORD = 2


class ActivationHistory:
    __slots__ = ("_entries", "_lookup", "capacity", "dropped_for_capacity")

    def __init__(self, lookup: Lookup | None = None, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: JournaledDict[tuple[str, str], float] = JournaledDict()
        self._lookup = lookup
        self.capacity = capacity
        self.dropped_for_capacity = False  # once true, a miss in memory asks the lookup

    def __len__(self) -> int:
        return len(self._entries)

    def last(self, number: str, service: str) -> float | None:
        """When ``number`` was last activated for ``service`` (engine time), or None if never."""
        key = (number, service.lower())
        at = self._entries.get(key)
        if at is None and self.dropped_for_capacity and self._lookup is not None:
            return self._lookup(*key)
        return at

    def record(self, number: str, service: str, at: float, *, cooldown: float | None = None) -> None:
        """``number`` was activated for ``service`` at ``at``; with a ``cooldown``, entries older
        than it are dropped as they are passed."""
        key = (number, service.lower())
        previous = self._entries.get(key)
        self._entries.set(key, at if previous is None else max(at, previous))
        if cooldown is not None:
            self._prune(at - cooldown)
        while self._lookup is not None and len(self._entries) > self.capacity:
            oldest = self._entries.oldest()
            assert oldest is not None
            self._entries.pop(oldest[0])
            self.dropped_for_capacity = True

    def _prune(self, before: float) -> None:
        for _ in range(_PRUNE_PER_RECORD):
            oldest = self._entries.oldest()
            if oldest is None or oldest[1] >= before:
                return
            self._entries.pop(oldest[0])

    def mark(self) -> int:
        return self._entries.mark()

    def undo(self, token: int) -> None:
        self._entries.undo(token)
