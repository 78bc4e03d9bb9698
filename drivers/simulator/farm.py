"""A set of simulated modems and the network behind them.

``ModemFarm`` owns N :class:`PtyModem` with SIM cards of deterministic identity, and is what the
control API, the tests, the demo and the benchmarks drive: inject an SMS (split into parts as a
network would, parts in any order), inject a fault, look at a modem's storage.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from drivers.simulator.catalogue import Catalogue, load_catalogue
from drivers.simulator.engine import SimCard, SimModem
from drivers.simulator.profiles import MIXED_ORDER, SIM_PROFILES
from drivers.simulator.pty import PtyModem
from drivers.sms.encode import DeliverSpec, encode_deliver

FAULT_KINDS = ("garbage", "silence", "reboot", "slow", "no_line_ending", "full_storage", "unplug", "replug",
               "pull_sim", "insert_sim", "wedge")


class FaultError(ValueError):
    """A fault request that cannot be carried out; the message says why."""


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return str((10 - total % 10) % 10)


def sim_identity(n: int) -> SimCard:
    """A deterministic, well-formed identity for SIM ``n``."""
    iccid = f"897010{n:012d}"
    return SimCard(iccid=iccid + luhn_digit(iccid), imsi=f"25001{n:010d}", msisdn=f"+7900{n:07d}")


@dataclass(frozen=True, slots=True)
class ModemInfo:
    id: int
    port: str
    profile: str
    iccid: str
    imsi: str
    msisdn: str
    imei: str = ""
    quirks: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "port": self.port, "profile": self.profile, "iccid": self.iccid,
                "imsi": self.imsi, "msisdn": self.msisdn, "imei": self.imei, "quirks": list(self.quirks)}


class ModemFarm:
    def __init__(
        self,
        count: int,
        *,
        profile: str = "mixed",
        directory: str | None = None,
        baud: int | None = None,
        capacity: int = 30,
        time_scale: float = 1.0,
        periodic_interval: float | None = 5.0,
        seed: int = 1,
        first_sim: int = 1,
        quirks: Sequence[str] = (),
        plan: Sequence[tuple[str, Sequence[str]]] | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        """``quirks``: catalogue keys every modem plays; ``plan``: (profile, quirk keys) per modem,
        overriding ``count``, ``profile`` and ``quirks``. Unknown or clashing quirks raise
        :class:`~drivers.simulator.quirks.QuirkError` (a ValueError)."""
        if profile != "mixed" and profile not in SIM_PROFILES:
            raise ValueError(f"unknown simulator profile {profile!r}; choose mixed or one of {sorted(SIM_PROFILES)}")
        if plan is None:
            plan = [(MIXED_ORDER[i % len(MIXED_ORDER)] if profile == "mixed" else profile, quirks) for i in range(count)]
        for name, _ in plan:
            if name not in SIM_PROFILES:
                raise ValueError(f"unknown simulator profile {name!r}; choose one of {sorted(SIM_PROFILES)}")
        self.catalogue = catalogue if catalogue is not None else (load_catalogue() if any(q for _, q in plan) else None)
        self.directory = directory or tempfile.mkdtemp(prefix="simgw-sim-")
        os.makedirs(self.directory, exist_ok=True)
        self._rng = random.Random(seed)
        refs = random.Random(seed + 1)
        self._last_ref = {8: refs.randrange(1, 256), 16: refs.randrange(1, 65536)}
        self.modems: list[PtyModem] = []
        for i, (name, keys) in enumerate(plan):
            engine = SimModem(SIM_PROFILES[name], sim_identity(first_sim + i), imei=f"35693803{i:06d}" + "0",
                              capacity=capacity, seed=seed + i)
            if keys:
                assert self.catalogue is not None
                engine.quirks = self.catalogue.player(keys)
            link = os.path.join(self.directory, f"modem{i:03d}")
            self.modems.append(PtyModem(engine, link, baud=baud, time_scale=time_scale,
                                        periodic_interval=periodic_interval if engine.profile.periodic_urc else None))
        self._original_sims = [m.engine.sim for m in self.modems]

    async def start(self) -> None:
        for modem in self.modems:
            await modem.start()

    async def stop(self) -> None:
        for modem in self.modems:
            await modem.stop()

    def info(self) -> list[ModemInfo]:
        out = []
        for i, modem in enumerate(self.modems):
            sim = modem.engine.sim or self._original_sims[i]
            quirks = modem.engine.quirks.keys if modem.engine.quirks is not None else ()
            out.append(ModemInfo(i, modem.link_path, modem.engine.profile.name, sim.iccid, sim.imsi, sim.msisdn,
                                 modem.engine.imei, quirks))
        return out

    def modem(self, modem_id: int) -> PtyModem:
        if not 0 <= modem_id < len(self.modems):
            raise KeyError(f"no simulated modem {modem_id} (have 0..{len(self.modems) - 1})")
        return self.modems[modem_id]

    def set_quirks(self, modem_id: int, keys: Sequence[str], *, boot_seconds: float = 1.0) -> None:
        """Give a running modem another set of catalogue quirks; it restarts to play them from boot."""
        modem = self.modem(modem_id)
        if self.catalogue is None:
            self.catalogue = load_catalogue()
        player = self.catalogue.player(keys) if keys else None  # raises before anything changes
        modem.engine.quirks = player
        modem.ensure_quirk_ticks()
        modem.reboot(boot_seconds)

    def stale_announcement(self, modem_id: int) -> int:
        """Announce an index that holds nothing, as a modem does when another reader (a sweep,
        a second program) emptied the slot between the store and the ``+CMTI``. Returns it."""
        modem = self.modem(modem_id)
        index = modem.engine.stale_index()
        modem.engine.emit_urc(f'+CMTI: "{modem.engine.settings.receive_storage}",{index}')
        modem.flush()
        return index

    # ------------------------------------------------------------------------------------- SMS
    def next_ref(self, bits: int = 8) -> int:
        """The concatenation reference of the next SMS, as a sender allots it: "a modulo 256 counter"
        (3GPP TS 23.040 9.2.3.24.1, https://www.tech-invite.com/3m23/toc/tinv-3gpp-23-040_m.html),
        from a seeded start. Drawn at random instead, two long SMS sent within one second to one SIM
        share it now and then, and with the same tail their last parts are byte-identical PDUs: one
        SMS sent twice, to any receiver (how the crash test once lost 'crash-test #765')."""
        modulus = 256 if bits == 8 else 65536
        self._last_ref[bits] = self._last_ref[bits] % (modulus - 1) + 1  # 1 .. modulus-1, as before
        return self._last_ref[bits]

    def pdus_for(self, sender: str, text: str, *, ref_bits: int = 8, timestamp: datetime | None = None,
                 data: bytes | None = None) -> list[str]:
        spec = DeliverSpec(sender=sender, text=text, data=data, concat_ref=self.next_ref(ref_bits), ref_bits=ref_bits,
                           timestamp=timestamp or datetime.now(timezone.utc).replace(microsecond=0))
        return encode_deliver(spec)

    def send_sms(self, modem_id: int, sender: str, text: str, *, shuffle: bool = False, ref_bits: int = 8,
                 data: bytes | None = None) -> list[str]:
        """Deliver ``text`` to modem ``modem_id`` as the network would; returns the PDUs."""
        pdus = self.pdus_for(sender, text, ref_bits=ref_bits, data=data)
        order = list(pdus)
        if shuffle:
            self._rng.shuffle(order)
        target = self.modem(modem_id)
        for pdu in order:
            target.deliver(pdu)
        return pdus

    def send_pdu(self, modem_id: int, pdu_hex: str) -> None:
        self.modem(modem_id).deliver(pdu_hex)

    # ---------------------------------------------------------------------------------- faults
    def inject_fault(self, modem_id: int, kind: str, *, seconds: float = 2.0, data: bytes | None = None) -> None:
        modem = self.modem(modem_id)
        if kind == "garbage":
            modem.garbage(data if data is not None else bytes(self._rng.randrange(256) for _ in range(64)))
        elif kind == "silence":
            modem.silence(seconds)
        elif kind == "reboot":
            modem.reboot(seconds)
        elif kind == "slow":
            modem.delay = seconds
        elif kind == "no_line_ending":
            modem.engine.drop_terminator_once = True
        elif kind == "full_storage":
            engine = modem.engine
            free = engine.capacity - len(engine.storage)
            sim = engine.sim or self._original_sims[modem_id]
            engine.fill_storage([self.pdus_for("+79990000000", f"held {sim.msisdn[-4:]} #{k}")[0] for k in range(free)])
        elif kind == "unplug":
            modem.unplug()
        elif kind == "replug":
            modem.replug()
        elif kind == "pull_sim":
            modem.engine.pull_sim()
            modem.flush()
        elif kind == "wedge":
            modem.engine.wedged = True
        elif kind == "insert_sim":
            modem.engine.insert_sim(self._original_sims[modem_id])
            modem.flush()
        else:
            raise FaultError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")

    def stored_count(self) -> int:
        return sum(len(m.engine.storage) + len(m.engine.me_storage) for m in self.modems)

    def held_count(self) -> int:
        return sum(len(m.engine.network_queue) for m in self.modems)

