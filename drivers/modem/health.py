"""Health: signal, registration and operator, probed periodically, and the state they imply.

The health cycle is also where nothing stays final: a modem whose SIM was not ready is
initialised again (a SIM that was busy at power-up becomes ready; ``no_sim`` is probed on every
cycle), a modem that is not registered has its radio checked (and switched on), indications the
modem refused are asked for again, and identity that could not be read is read again.
"""

from __future__ import annotations

from drivers.at.parse import AtParseError, csq_to_dbm, parse_cops, parse_creg, parse_csq
from drivers.channel import CommandTimeout, Priority
from drivers.modem.types import ModemState, ModemUnresponsive


class ModemHealthProbes:
    """Mixin of :class:`~drivers.modem.Modem`: periodic probes and the derived state."""

    async def health_cycle(self) -> None:
        """One periodic visit: heal what can be healed, then probe."""
        if not self.ready.is_set():
            self._log.info("modem.reinitialise", sim_state=self.health.sim_state)
            await self._initialise(sim_retries=())
            return
        if self.health.cnmi is None:
            await self._enable_indications()
        if self._identity_missing():
            await self._identify()
            await self._read_sim_identity()
        await self.probe_health()
        registration = self.health.registration
        if registration is not None and not registration.registered:
            await self._ensure_radio_on()

    async def probe_health(self) -> None:
        timeouts = 0
        for command, apply in (("AT+CSQ", self._apply_csq), ("AT+CREG?", self._apply_creg),
                               ("AT+COPS?", self._apply_cops)):
            try:
                response = await self._cmd(command, priority=Priority.BACKGROUND, check=False)
            except CommandTimeout:
                timeouts += 1
                if timeouts >= self.options.unresponsive_after:
                    raise ModemUnresponsive(f"{self.path}: health probe timed out")
                continue
            if response.result.ok:
                try:
                    apply(response.lines)
                except AtParseError as exc:
                    self._log_once("modem.bad_health_line", error=str(exc))
        self._set_state(self._derived_state())

    def _derived_state(self) -> ModemState:
        if self.health.sim_state not in (None, "READY"):
            return ModemState.SIM_LOCKED if "PIN" in self.health.sim_state or "PUK" in self.health.sim_state \
                else ModemState.NO_SIM
        reg = self.health.registration
        if reg is not None and not reg.registered:
            return ModemState.NOT_REGISTERED
        if self.health.cnmi is None:
            return ModemState.DEGRADED
        return ModemState.OK

    def _apply_csq(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CSQ:"):
                rssi, _ = parse_csq(line)
                self.health.rssi = rssi
                self.health.signal_dbm = csq_to_dbm(rssi)

    def _apply_creg(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CREG:"):
                self.health.registration = parse_creg(line)

    def _apply_cops(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+COPS:"):
                self.health.operator = parse_cops(line)
