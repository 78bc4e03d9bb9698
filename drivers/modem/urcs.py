"""What the driver does with each unsolicited result code.

Which codes mean "the modem restarted and forgot our settings" is knowledge about real modems:
``^BOOT:`` is not one of them. On Huawei it is a periodic heartbeat (sent every few seconds
when ``AT^CURC=0`` is refused), and ModemManager's huawei plugin
(src/plugins/huawei/mm-broadband-modem-huawei.c) registers ``\\^BOOT:.+`` only to ignore it;
treating it as a reboot re-initialised the modem on every heartbeat (issue 11, failure 6).
Vendors that announce a start-up their own way list those lines in their profile
(``restart_lines``: Wavecom's ``+WIND: 4``); and a modem that echoes our commands again after it
was told ``ATE0`` has lost its settings whatever it said (V.250: echo is on after a reset), which
:meth:`~drivers.modem.Modem._cmd` notices.
"""

from __future__ import annotations

from drivers.at.parse import AtParseError, parse_cmti, parse_cpin, parse_creg, parse_cusd
from drivers.at.protocol import Urc
from drivers.modem.types import ModemState

BOOT_URCS = frozenset({"RDY", "^SYSSTART", "+CFUN:", "SMS Ready", "Call Ready", "+PACSP1"})
"""URCs that mean the modem restarted and forgot our settings (CNMI, CMGF, storage)."""
FULL_URCS = frozenset({"^SMMEMFULL:", "+CIEV:"})
SMS_READY_LINES = frozenset({"SMS Ready", "SMS DONE", "+QIND: SMS DONE", "+QIND: \"SMS DONE\"", "PB DONE",
                             "+WIND: 4", "+ZPBIC: 1,1"})
"""The modem's SMS stack is up (SIMCom SIM800 ``SMS Ready``, SIM7600 ``SMS DONE``, Quectel
``+QIND: SMS DONE``): SMS commands it refused before may now work."""


class ModemUrcs:
    """Mixin of :class:`~drivers.modem.Modem`: unsolicited result codes."""

    def _on_urc(self, urc: Urc) -> None:
        name = urc.name
        if urc.line in SMS_READY_LINES:
            self._sms_ready.set()
        if name == "+CMTI:":
            self._on_cmti(urc)
        elif name == "+CMT:" and urc.body:
            self._spawn_direct(urc.body)
        elif name in FULL_URCS and ("FULL" in urc.line.upper() or name == "^SMMEMFULL:"):
            self._log.warning("modem.storage_full")
            self._enqueue_sweep()
        elif (name in BOOT_URCS or urc.line in self.profile.restart_lines) and self.ready.is_set():
            self._log.info("modem.boot_urc", urc=urc.line[:40])
            self._settings_lost()
        elif name == "+CUSD:":
            self._on_cusd(urc)
        elif name == "+CREG:" or name == "+CEREG:":
            try:
                self.health.registration = parse_creg(urc.line)
            except AtParseError:
                pass
        elif name == "+CPIN:":
            self._on_cpin(urc)

    def _settings_lost(self) -> None:
        """The modem restarted (a boot line, or the echo came back): initialise it again."""
        self.ready.clear()
        self._reinit_needed.set()

    def _on_cmti(self, urc: Urc) -> None:
        try:
            storage, index = parse_cmti(urc.args)
        except AtParseError as exc:
            self._log_once("modem.bad_cmti", error=str(exc))
            self._enqueue_sweep()
            return
        self._enqueue_index(index, storage)

    def _on_cusd(self, urc: Urc) -> None:
        if self._ussd is not None and not self._ussd.done():
            try:
                self._ussd.set_result(parse_cusd(urc.line))
            except AtParseError as exc:
                self._ussd.set_exception(exc)

    def _on_cpin(self, urc: Urc) -> None:
        """A SIM that went away is reported at once; one that became ready is initialised (and
        identified again: it may be another card)."""
        self.health.sim_state = parse_cpin(urc.line)
        if self.health.sim_state != "READY":
            if self.ready.is_set():
                self._settings_lost()
            self._set_state(ModemState.NO_SIM, f"SIM state {self.health.sim_state}")
        elif not self.ready.is_set() and self.health.state in (ModemState.NO_SIM, ModemState.SIM_LOCKED):
            self._reinit_needed.set()
