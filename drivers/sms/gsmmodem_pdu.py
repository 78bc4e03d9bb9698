"""python-gsmmodem's PDU helpers, without its modem stack.

``gsmmodem/__init__.py`` imports ``gsmmodem.modem`` (pyserial, threading, its serial reader), so
a plain ``from gsmmodem.pdu import ...`` pulls pyserial into the I/O-free SMS core. Here
``gsmmodem.pdu`` (and the ``gsmmodem.exceptions`` it imports) load under a package object whose
``__init__`` has not run; then all three leave ``sys.modules`` again (this module keeps what it
needs), so a later ``import gsmmodem`` anywhere loads the real package whole, as if this had not
happened. The SMS core's copy and that one share no state: these are functions and value classes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType


def _load_pdu_module() -> ModuleType:
    if "gsmmodem.pdu" in sys.modules or "gsmmodem" in sys.modules:
        return importlib.import_module("gsmmodem.pdu")
    spec = importlib.util.find_spec("gsmmodem")
    if spec is None:
        raise ImportError("python-gsmmodem-new is not installed (a dependency of simgw)")
    sys.modules["gsmmodem"] = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
    try:
        return importlib.import_module("gsmmodem.pdu")
    finally:
        for name in ("gsmmodem", "gsmmodem.pdu", "gsmmodem.exceptions"):
            sys.modules.pop(name, None)


_pdu = _load_pdu_module()
Concatenation = _pdu.Concatenation
InformationElement = _pdu.InformationElement
SmsPduTzInfo = _pdu.SmsPduTzInfo
decodeSemiOctets = _pdu.decodeSemiOctets
encodeSemiOctets = _pdu.encodeSemiOctets
encodeTimestamp = _pdu._encodeTimestamp
