"""The modem driver's vocabulary: states, options, what it reports, and how a session ends."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from drivers.at.parse import Registration
from drivers.profiles import GENERIC
from drivers.sms.pdu import Decoded

if TYPE_CHECKING:
    from drivers.modem.session import Modem


class ModemState(enum.Enum):
    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"
    NO_SIM = "no_sim"
    SIM_LOCKED = "sim_locked"
    NOT_REGISTERED = "not_registered"
    UNRESPONSIVE = "unresponsive"
    RESETTING = "resetting"
    SWITCHING = "switching"  # a SIM bank is connecting another SIM; back after the modem's reset
    GONE = "gone"


class ReceiveMode(enum.Enum):
    STORE = "store"  # +CMTI: stored on the SIM, then announced (default; survives our crashes)
    DIRECT = "direct"  # +CMT: routed to us, acknowledged with +CNMA after the sink stored it


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    imei: str = ""
    imsi: str = ""
    iccid: str = ""
    msisdn: str = ""


@dataclass(frozen=True, slots=True)
class ReceivedPart:
    """One message as read from the modem. ``sms`` is None when the PDU did not decode; the raw
    hex and the ``error`` are kept so nothing is silently dropped."""

    port: str
    identity: ModemIdentity
    storage: str | None
    index: int | None
    pdu_hex: str
    sms: Decoded | None
    error: str | None
    received_at: datetime
    received_monotonic: float


PartSink = Callable[[ReceivedPart], Awaitable[None]]


@dataclass(slots=True)
class ModemHealth:
    state: ModemState = ModemState.STARTING
    profile: str = GENERIC.name
    signal_dbm: int | None = None
    rssi: int | None = None
    registration: Registration | None = None
    operator: str | None = None
    sim_state: str | None = None
    radio: int | None = None  # +CFUN <fun> last read: 1 full, 0 minimum, 4 flight mode
    storage: str | None = None
    storage_used: int | None = None
    storage_total: int | None = None
    cnmi: str | None = None
    last_error: str | None = None
    last_sms_at: float | None = None
    sms_received: int = 0
    sms_undecodable: int = 0
    sink_failures: int = 0
    reader_errors: int = 0  # work items that failed on a bad answer; the reader carried on
    recoveries: int = 0
    soft_resets: int = 0


@dataclass(frozen=True, slots=True)
class ModemOptions:
    baudrate: int = 115200
    receive_mode: ReceiveMode = ReceiveMode.STORE
    command_timeout: float = 5.0
    list_timeout: float = 30.0
    health_interval: float = 30.0
    sweep_interval: float = 60.0
    empty_read_retries: tuple[float, ...] = (0.1, 0.3, 1.0)
    # A SIM that is busy (+CME ERROR: 14) or NOT READY at power-up is asked again after each of
    # these delays, then on every health cycle: Qualcomm dongles stay busy for seconds.
    sim_busy_retries: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    # SMS commands refused before "SMS Ready"/"SMS DONE": retried when the modem says it is ready,
    # or after each of these delays at the latest.
    sms_ready_retries: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    reopen_initial: float = 0.2  # first reopen delay; doubles per failure, with jitter
    reopen_max: float = 30.0  # the cap: a modem that is gone is looked for twice a minute
    unresponsive_after: int = 2  # consecutive timeouts before the port is reopened
    soft_reset_after: int = 2  # reopenings of a modem that answers AT but hangs, before a soft reset
    reset_wait: float | None = None  # seconds to let a reset modem boot (None: the profile's figure)
    profile: str | None = None  # force a profile instead of choosing from the identity


class ModemUnresponsive(Exception):
    pass


class Recover(Exception):
    """The port's life ended without reaching ready; tenacity decides when to try again."""


class ModemResetting(Exception):
    """The driver soft-reset the modem; the port is closed until it has had time to boot."""


class SimSwitching(ModemResetting):
    """Another SIM was connected and the modem reset to use it; the port reopens after the boot."""


SimSelect = Callable[["Modem"], Awaitable[None]]
"""What connects the new SIM: a bank controller's command, or one sent on the modem itself."""


@dataclass(order=True, slots=True)
class Work:
    """A unit of reader work: read one index (after +CMTI) or sweep the whole storage."""

    seq: int
    index: int | None = field(compare=False, default=None)
    storage: str | None = field(compare=False, default=None)
    switch: tuple[SimSelect, asyncio.Future[None]] | None = field(compare=False, default=None)
