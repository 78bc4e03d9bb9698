"""The simulated modem's state that outlives a command: the SIM card (its storage and the SMS the
network holds for it travel with it) and the settings a reset forgets. Plain data, no behaviour."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class SimCard:
    """A SIM. Its SM storage and the SMS the network holds for it travel with it between radios."""

    iccid: str
    imsi: str
    msisdn: str
    operator: str = "SimNet"
    registered: bool = True
    number_on_sim: bool = True  # EF_MSISDN filled in, so AT+CNUM answers; many SIMs leave it empty
    ussd_number_reply: str | None = None  # what the operator's "my number" USSD answers, {msisdn} filled in
    never_registers: bool = False
    storage: dict[int, tuple[int, str]] = field(default_factory=dict)
    held: deque[str] = field(default_factory=deque)


@dataclass(slots=True)
class Settings:
    """What a reset forgets."""

    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cnmi: tuple[int, ...] = (0, 0, 0, 0, 0)
    csms: int = 0
    creg_n: int = 0
    storage: str = "SM"  # <mem1>: read and delete
    receive_storage: str = "SM"  # <mem3>: where new messages go
