"""Which number was activated for which service, and when: the lease engine's memory of it. I/O-free.

The marketplace's rule "a number activated for a service is not leased for that service again (for
ever, or for the supplier's cool-down)" needs the history, so the store keeps it (table
``activations``: rows older than the cool-down are purged; with "never", the newest
``MAX_ACTIVATIONS``, see :mod:`gateway.store.retention`) and this class holds a bounded part in
memory (after a purge that removed rows, :meth:`ActivationHistory.forget_purged` drops them here too):

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

from gateway.domain.journal import JournaledDict

Lookup = Callable[[str, str], "float | None"]  # (number, service) -> engine time of the last activation
DEFAULT_CAPACITY = 100_000  # ~25 MB of entries; the store keeps 80,000 (gateway.store.MAX_ACTIVATIONS)
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

    def forget_purged(self, purged: Callable[[str, str], bool]) -> int:
        """Drop entries, oldest first, as long as ``purged(number, service)`` says the store no
        longer has them (past the cool-down, in wall time, or over its cap); returns how many.
        Memory follows the store's rows, not a clock: the engine counts in monotonic time."""
        forgotten = 0
        while (oldest := self._entries.oldest()) is not None and purged(*oldest[0]):
            self._entries.pop(oldest[0])
            forgotten += 1
        return forgotten

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


class UsedServices:
    """The inventory's view of the activation history: number -> {service: wall time}, and every
    service ever activated. The inventory is rebuilt after every bank change and marketplace
    command; reading the whole ``activations`` table each time made it slower with every lease.
    Loaded from the store on first use and kept in step by the core as it records activations;
    forgotten after a rollback or a purge that removed rows (reloaded on next use). Beyond
    ``capacity`` entries it is not kept and each use reads the whole table: a safety net the
    store's cap keeps out of reach (the purge trims the table every minute to
    ``gateway.store.MAX_ACTIVATIONS``, 20,000 below the default capacity)."""

    __slots__ = ("_load", "_by_number", "_services", "_entries", "capacity")

    def __init__(self, load: Callable[[], list[tuple[str, str, float]]], capacity: int = DEFAULT_CAPACITY) -> None:
        self._load = load
        self._by_number: dict[str, dict[str, float]] | None = None
        self._services: set[str] = set()
        self._entries = 0
        self.capacity = capacity

    def _loaded(self) -> dict[str, dict[str, float]]:
        if self._by_number is not None:
            return self._by_number
        by_number: dict[str, dict[str, float]] = {}
        services: set[str] = set()
        rows = self._load()
        for number, service, at in rows:
            by_number.setdefault(number, {})[service.lower()] = at
            services.add(service.lower())
        if len(rows) <= self.capacity:
            self._by_number, self._services, self._entries = by_number, services, len(rows)
        else:
            self._services = services  # for this use only
        return by_number

    def of(self, number: str) -> dict[str, float]:
        return self._loaded().get(number, {})

    def services(self) -> set[str]:
        self._loaded()
        return self._services

    def record(self, number: str, service: str, at: float) -> None:
        """An activation committed with the current transaction (see :meth:`forget`)."""
        if self._by_number is None:
            return
        entries = self._by_number.setdefault(number, {})
        if service.lower() not in entries:
            self._entries += 1
        entries[service.lower()] = max(at, entries.get(service.lower(), at))
        self._services.add(service.lower())
        if self._entries > self.capacity:
            self.forget()

    def forget(self) -> None:
        self._by_number, self._services, self._entries = None, set(), 0
