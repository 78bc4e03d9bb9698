"""The quirk catalogue: real modem behaviour from public sources, as data (``quirks.toml``).

Each entry says which modem family does what (the bytes where a source shows them), where that is
written down, how the simulator reproduces it (its ``sim`` table, played by
:mod:`drivers.simulator.quirks`), which driver profile the modem must end up with, and the test that
proves the driver survives it. Loading checks every entry, so a typo fails loudly and early.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.simulator.profiles import SIM_PROFILES
from drivers.simulator.quirks import QuirkError, QuirkPlayer, check_sim_table, conflicts, merge_behaviours

CATALOGUE_PATH = Path(__file__).with_name("quirks.toml")
REQUIRED = ("key", "family", "profile", "expect_profile", "does", "sim", "test", "source")


@dataclass(frozen=True, slots=True)
class Source:
    origin: str  # the independent project or vendor the evidence comes from
    ref: str  # file and line, function, issue number, or manual section
    url: str


@dataclass(frozen=True, slots=True)
class QuirkEntry:
    key: str
    family: str
    profile: str  # the simulator profile that plays it
    expect_profile: str  # the driver profile the modem must be identified as
    does: str
    bytes: str
    sim: dict[str, Any]
    test: str
    sources: tuple[Source, ...]
    any_profile: bool = False  # the quirk is not vendor-specific: the soup may put it on any modem
    expect_resets: int = 0


@dataclass(frozen=True, slots=True)
class Catalogue:
    entries: tuple[QuirkEntry, ...]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    def get(self, key: str) -> QuirkEntry:
        for entry in self.entries:
            if entry.key == key:
                return entry
        raise QuirkError(f"no quirk {key!r} in the catalogue; `simgw simulate --list-quirks` shows them")

    def origins(self) -> set[str]:
        return {s.origin for e in self.entries for s in e.sources}

    def compatible(self, keys: Iterable[str]) -> bool:
        chosen = [self.get(k) for k in keys]
        return all(not conflicts(a.sim, b.sim) for i, a in enumerate(chosen) for b in chosen[i + 1:])

    def usable_on(self, profile: str) -> list[QuirkEntry]:
        """Entries a modem of simulator ``profile`` can carry."""
        return [e for e in self.entries if e.profile == profile or e.any_profile]

    def player(self, keys: Iterable[str], clock: Callable[[], float] = time.monotonic) -> QuirkPlayer:
        chosen = tuple(dict.fromkeys(keys))
        behaviour = merge_behaviours((k, self.get(k).sim) for k in chosen)
        return QuirkPlayer(chosen, behaviour, clock)


def _entry(raw: dict[str, Any], where: str) -> QuirkEntry:
    missing = [name for name in REQUIRED if not raw.get(name)]
    if missing:
        raise QuirkError(f"{where}: missing {missing}")
    key = raw["key"]
    if raw["profile"] not in SIM_PROFILES:
        raise QuirkError(f"{key}: unknown simulator profile {raw['profile']!r}")
    sources = tuple(Source(str(s["origin"]), str(s["ref"]), str(s.get("url", ""))) for s in raw["source"])
    if any(not s.origin or not s.ref for s in sources):
        raise QuirkError(f"{key}: every source needs an origin and a ref")
    check_sim_table(key, raw["sim"])
    merge_behaviours([(key, raw["sim"])])  # builds it once, so a malformed table fails here
    return QuirkEntry(key=key, family=raw["family"], profile=raw["profile"], expect_profile=raw["expect_profile"],
                      does=raw["does"], bytes=raw.get("bytes", ""), sim=raw["sim"], test=raw["test"],
                      sources=sources, any_profile=bool(raw.get("any_profile", False)),
                      expect_resets=int(raw.get("expect_resets", 0)))


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read and check the catalogue; :class:`QuirkError` says what is wrong and where."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    entries = tuple(_entry(raw, f"{path.name} entry {i + 1}") for i, raw in enumerate(data.get("quirk", [])))
    keys = [e.key for e in entries]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise QuirkError(f"{path.name}: duplicate keys {sorted(duplicates)}")
    return Catalogue(entries)
