"""A dict that can be put back as it was, at the cost of what changed, not of its size. I/O-free.

The core snapshots the lease engine before every transaction and rolls it back if the commit
fails. Copying a dict that fills up over weeks (the ended leases, the activation history) on
every transaction makes the CPU per SMS grow with uptime; a :class:`JournaledDict` instead notes
the previous value of each key changed since its last :meth:`~JournaledDict.mark` and replays
those notes backwards on :meth:`~JournaledDict.undo`.

Only the last mark can be undone (the core never nests transactions): undoing an older one raises
``RuntimeError`` rather than restore a wrong state. The journal holds what changed since the
last mark, so it is as small as one transaction's changes; before the first mark nothing is
journaled at all (a restore at startup, an engine used without transactions in tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_ABSENT = object()


class JournaledDict(Generic[K, V]):
    __slots__ = ("_data", "_journal", "_mark")

    def __init__(self) -> None:
        self._data: dict[K, V] = {}
        self._journal: list[tuple[K, object]] = []
        self._mark = 0  # 0: not marked yet, nothing to journal

    # ------------------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._data.get(key, default)

    def oldest(self) -> tuple[K, V] | None:
        """The entry written longest ago (every write moves its key to the end)."""
        for key in self._data:
            return key, self._data[key]
        return None

    # ------------------------------------------------------------------------------ writing
    def set(self, key: K, value: V) -> None:
        """Write ``value`` and move ``key`` to the end (the newest)."""
        old = self._data.pop(key, _ABSENT)
        if self._mark:
            self._journal.append((key, old))
        self._data[key] = value

    def pop(self, key: K) -> V | None:
        old = self._data.pop(key, _ABSENT)
        if old is _ABSENT:
            return None
        if self._mark:
            self._journal.append((key, old))
        return old  # type: ignore[return-value]

    # ----------------------------------------------------------------------------- rollback
    def mark(self) -> int:
        """Forget the changes before now: from here on, :meth:`undo` with this token puts them
        back."""
        self._journal.clear()
        self._mark += 1
        return self._mark

    def undo(self, token: int) -> None:
        """Put every key changed since the mark ``token`` back as it was."""
        if token != self._mark:
            raise RuntimeError(f"undo to mark {token}, but the last mark is {self._mark}: only the last can be undone")
        for key, old in reversed(self._journal):
            if old is _ABSENT:
                self._data.pop(key, None)
            else:
                self._data[key] = old  # type: ignore[assignment]
        self._journal.clear()
