"""What the radios can serve at once, per key (country/operator) and per service. I/O-free.

A radio counts once per key however many idle SIMs with that key it reaches. For a service, a
radio keeps a key unless *every* one of its SIMs with that key was activated for the service, so
the per-service counts come from intersecting the SIMs' sets of used services: the work grows with
what those SIMs were used for, not with services x SIMs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

Radio = list[tuple[str, str]]  # (key, number) of the SIMs a radio could serve now


def count_radios(radios: list[Radio]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for candidates in radios:
        for key in {key for key, _ in candidates}:
            counts[key] = counts.get(key, 0) + 1
    return counts


def count_by_service(radios: list[Radio], services: Iterable[str],
                     blocked: Callable[[str], set[str]]) -> dict[str, dict[str, int]]:
    """For each of ``services``: per key, the radios with a SIM not ``blocked`` for it (a key no
    radio can serve is left out, as in :func:`count_radios`)."""
    capacity = count_radios(radios)
    lost: Counter[tuple[str, str]] = Counter()
    for candidates in radios:
        by_key: dict[str, list[str]] = {}
        for key, number in candidates:
            by_key.setdefault(key, []).append(number)
        for key, numbers in by_key.items():
            common = set(blocked(numbers[0]))
            for number in numbers[1:]:
                if not common:
                    break
                common &= blocked(number)
            for service in common:
                lost[(service, key)] += 1
    out = {}
    for service in sorted(services):
        counts = {key: n - lost[(service, key)] for key, n in capacity.items()}
        out[service] = {key: n for key, n in counts.items() if n > 0}
    return out
