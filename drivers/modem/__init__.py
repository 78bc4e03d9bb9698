"""The modem driver: one :class:`Modem` per port, from init to recovery (see its modules)."""

from drivers.modem.session import Modem, stop_modems
from drivers.modem.types import (
    ModemHealth,
    ModemIdentity,
    ModemOptions,
    ModemResetting,
    ModemState,
    ModemUnresponsive,
    PartSink,
    ReceivedPart,
    ReceiveMode,
    SimSelect,
    SimSwitching,
)
from drivers.modem.urcs import BOOT_URCS, FULL_URCS

__all__ = ["BOOT_URCS", "FULL_URCS", "Modem", "ModemHealth", "ModemIdentity", "ModemOptions", "ModemResetting",
           "ModemState", "ModemUnresponsive", "PartSink", "ReceivedPart", "ReceiveMode", "SimSelect", "SimSwitching",
           "stop_modems"]
