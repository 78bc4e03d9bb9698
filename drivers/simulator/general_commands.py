"""The simulated modem's general commands (V.250 and 27.007): identity, SIM, network, functionality,
USSD, on-modem SIM switching. A mixin of :class:`~drivers.simulator.engine.SimModem`, as
:mod:`drivers.simulator.sms_commands` holds the SMS commands, so the engine module keeps state,
input and dispatch."""

from __future__ import annotations

import re

from drivers.simulator.state import Settings


def _swap(digits: str) -> str:
    digits = digits + "F" * (len(digits) % 2)
    return "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))


class GeneralCommands:
    """Handlers for ``ATE``/``ATZ``/``ATI``, ``+CGMI``..``+CGSN``, ``+CIMI``, ICCID, ``+CRSM``, ``+CNUM``,
    ``+CUSD``, SIM-slot selection, ``+CPIN``, ``+CSQ``, ``+CREG``, ``+COPS``, ``+CFUN``, ``+CMEE``."""

    __slots__ = ()

    def _noop(self, raw: str, body: str) -> None:
        self._ok()

    def _echo(self, raw: str, body: str) -> None:
        self.settings.echo = body == "E1"
        self._ok()

    def _reset_settings(self, raw: str, body: str) -> None:
        self.settings = Settings()
        self._ok()

    def _ati(self, raw: str, body: str) -> None:
        self._ok(self.profile.manufacturer, self.profile.model, f"Revision: {self.profile.revision}")

    def _cgmi(self, raw: str, body: str) -> None:
        self._ok(self.profile.manufacturer)

    def _cgmm(self, raw: str, body: str) -> None:
        self._ok(self.profile.model)

    def _cgmr(self, raw: str, body: str) -> None:
        self._ok(self.profile.revision)

    def _cgsn(self, raw: str, body: str) -> None:
        self._ok(self.imei)

    def _need_sim(self) -> bool:
        if self.sim is None:
            self._cme(10, "SIM not inserted")
            return False
        return True

    def _cimi(self, raw: str, body: str) -> None:
        if self._need_sim():
            self._ok(self.sim.imsi)

    def _iccid(self, raw: str, body: str) -> None:
        if self._need_sim():
            self._ok(self.profile.iccid_format.format(iccid=self.sim.iccid))

    def _crsm(self, raw: str, body: str) -> None:
        if body.startswith("+CRSM=176,12258") and self._need_sim():
            self._ok(f'+CRSM: 144,0,"{_swap(self.sim.iccid)}"')
        elif self.sim is not None:
            self._ok("+CRSM: 106,130")

    def _cnum(self, raw: str, body: str) -> None:
        if self._need_sim():
            if self.sim.number_on_sim:
                self._ok(f'+CNUM: "","{self.sim.msisdn}",145')
            else:
                self._ok()

    def _cusd(self, raw: str, body: str) -> None:
        """``AT+CUSD=1,"*111*0887#",15``: OK now, the network's answer later as ``+CUSD:``."""
        match = re.fullmatch(r'\+CUSD=1,"([0-9*#]+)"(?:,\d+)?', body)
        if match is None:
            self._final("ERROR")
            return
        if not self._need_sim():
            return
        self._ok()
        sim = self.sim
        if not sim.registered:
            self._urc("+CUSD: 4")  # the network is not there to ask
        elif sim.ussd_number_reply is not None:
            self._urc(f'+CUSD: 0,"{sim.ussd_number_reply.format(msisdn=sim.msisdn)}",15')
        else:
            self._urc('+CUSD: 0,"Unknown request",15')

    def _select_slot(self, raw: str, body: str) -> None:
        """Cinterion ``AT^SCFG="SIM/CS","0"|"3"`` (or "SIM1"/"SIM3"), Quectel ``AT+QUIMSLOT=1|2``."""
        value = body.rsplit(",", 1)[-1] if body.startswith("^SCFG") else body.split("=", 1)[1]
        value = value.strip().strip('"')
        slot = {"0": 1, "SIM1": 1, "3": 2, "SIM3": 2}.get(value) if body.startswith("^SCFG") else \
            (int(value) if value in ("1", "2") else None)
        if slot is None or self.slot_select is None or not self.slot_select(slot):
            self._cme(3, "operation not allowed")
            return
        self._ok()

    def _cpin(self, raw: str, body: str) -> None:
        if self._need_sim():
            self._ok("+CPIN: READY")

    def _csq(self, raw: str, body: str) -> None:
        self._ok(f"+CSQ: {self.rssi if self.sim else 99},99")

    def _creg_query(self, raw: str, body: str) -> None:
        stat = 1 if self.sim is not None and self.sim.registered else 0
        self._ok(f"+CREG: {self.settings.creg_n},{stat}")

    def _cops(self, raw: str, body: str) -> None:
        if self.sim is not None and self.sim.registered:
            self._ok(f'+COPS: 0,0,"{self.sim.operator}",2')
        else:
            self._ok("+COPS: 0")

    def _cfun_query(self, raw: str, body: str) -> None:
        self._ok("+CFUN: 1")

    def _cfun(self, raw: str, body: str) -> None:
        if body.startswith("+CFUN=1,1"):
            self._reboot_command(raw, body)
        else:
            self._ok()

    def _reboot_command(self, raw: str, body: str) -> None:
        self.resets += 1
        self._ok()
        self.start_reboot()
        self.reboot_requested = True

    def _cmee(self, raw: str, body: str) -> None:
        value = body[6:]
        if value in ("0", "1", "2"):
            self.settings.cmee = int(value)
            self._ok()
        else:
            self._final("ERROR")
