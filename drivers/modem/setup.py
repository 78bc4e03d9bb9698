"""Bringing a modem up: sync, identify, radio on, SIM ready, PDU mode, storage, indications.

Nothing here is final. A SIM that is busy at power-up is asked again with backoff and then on
every health cycle; a radio found off is switched on; SMS commands refused before the modem said
``SMS Ready`` are retried once it does. When the SIM becomes ready the modem initialises fully.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from drivers.at.parse import AtParseError, parse_cpms
from drivers.channel import CommandFailed, CommandTimeout, Priority
from drivers.modem.sim import switch_radio_on, wait_for_sim
from drivers.modem.types import ModemState, ModemUnresponsive, ReceiveMode


class ModemSetup:
    """Mixin of :class:`~drivers.modem.Modem`: the initialisation sequence."""

    async def _initialise(self, *, sim_retries: tuple[float, ...] | None = None) -> None:
        """Initialise the modem; ``sim_retries`` overrides the options' SIM-busy backoff (the
        health cycle asks once). Sets :attr:`settled` when done, and :attr:`ready` if the SIM is
        ready; when it is not, stored SMS are still swept."""
        await self._sync()
        self._answered_at = True
        await self._cmd("ATE0", check=False)
        echoes_after_ate0 = self._echoes()
        if not (await self._cmd("AT+CMEE=2", check=False)).result.ok:
            await self._cmd("AT+CMEE=1", check=False)
        await self._identify()
        for command in self.profile.init_commands:
            await self._cmd(command, check=False)
        await self._ensure_radio_on()
        retries = self.options.sim_busy_retries if sim_retries is None else sim_retries
        if not await self._check_sim(retries):
            await self._cmd("AT+CMGF=0", check=False)  # so that the sweep's AT+CMGL=4 can still work
            self.settled.set()
            self._enqueue_sweep()
            return
        await self._read_sim_identity()
        await self._setup_sms()
        await self.probe_health()
        self._half_alive = 0
        # Echo honoured since ATE0: an echo from now on means the modem restarted silently.
        self._echo_watch = self._echoes() if self._echoes() == echoes_after_ate0 else None
        self.ready.set()
        self.settled.set()
        self._enqueue_sweep()

    async def _sync(self) -> None:
        """Get a clean ``OK`` to a bare ``AT``; a booting modem may need a few tries."""
        for attempt in range(4):
            try:
                response = await self._cmd("AT", timeout=1.0 + attempt, priority=Priority.URGENT, check=False)
                if response.result.ok:
                    return
            except CommandTimeout:
                continue
        raise ModemUnresponsive(f"{self.path}: no answer to AT")

    # ------------------------------------------------------------------------------ radio, SIM
    async def _ensure_radio_on(self) -> None:
        """``+CFUN: 0``/``4`` (ZTE dongles boot that way): switch the radio on."""

        def on_switch(mode: int, command: str) -> None:
            self._log.warning("modem.radio_off", cfun=mode, command=command)

        self.health.radio = await switch_radio_on(self._cmd, self.profile, max(self.options.command_timeout, 5.0),
                                                  on_switch)
        if self.health.radio not in (None, 1):
            self._log_once("modem.radio_stays_off", cfun=self.health.radio)

    async def _check_sim(self, retries: tuple[float, ...]) -> bool:
        """True when the SIM is ready; a busy or not-yet-ready SIM is asked again after each of
        ``retries``; then the state says why not, and the health cycle asks again."""

        def on_retry(state: str, delay: float) -> None:
            self._log.info("modem.sim_not_ready", sim_state=state, retry_in=delay)

        sim_state = await wait_for_sim(self._cmd, self.profile, retries, on_retry)
        self.health.sim_state = sim_state
        if sim_state == "READY":
            return True
        self.identity = replace(self.identity, imsi="", iccid="", msisdn="")
        locked = "PIN" in sim_state or "PUK" in sim_state
        self._set_state(ModemState.SIM_LOCKED if locked else ModemState.NO_SIM, f"SIM state {sim_state}")
        return False

    # ------------------------------------------------------------------------------------ SMS
    async def _setup_sms(self) -> None:
        """PDU mode and storage, retried while the modem refuses SMS commands because its SMS
        stack is not up yet (``+CMS ERROR: 302``/``500`` before ``SMS Ready``/``SMS DONE``)."""
        for delay in (*self.options.sms_ready_retries, None):
            try:
                await self._cmd("AT+CMGF=0")
                await self._choose_storage()
                break
            except CommandFailed as exc:
                if delay is None:
                    raise
                self._log.info("modem.sms_not_ready", command=exc.command, result=exc.result.text, retry_in=delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._sms_ready.wait(), delay)
                self._sms_ready.clear()
        await self._enable_indications()

    async def _choose_storage(self) -> None:
        """Use the first storage the modem accepts for reading, writing and receiving: every
        storage in the three-memory form first, so that new messages are stored where they are
        read (a Cinterion whose <mem1> cannot be SM but <mem3> can: ModemManager
        src/tests/test-modem-helpers.c); only then the two- and one-memory forms, for old Wavecom
        firmware that refuses the third memory (python-gsmmodem test/fakemodems.py
        WavecomMultiband900E1800: ERROR to ``AT+CPMS="SM","SM","SR"``, OK to ``"SM","SM"``)."""
        response = None
        for count in (3, 2, 1):
            for storage in self.profile.storages:
                memories = ",".join([f'"{storage}"'] * count)
                response = await self._cmd(f"AT+CPMS={memories}", check=False)
                if response.result.ok:
                    self.health.storage = storage
                    self._record_cpms(response.lines)
                    return
        assert response is not None
        raise CommandFailed(self.path, "AT+CPMS", response.result)

    def _record_cpms(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CPMS:"):
                try:
                    first = parse_cpms(line)[0]
                except AtParseError:
                    return
                self.health.storage_used, self.health.storage_total = first[1], first[2]

    async def _enable_indications(self) -> None:
        direct = self.options.receive_mode is ReceiveMode.DIRECT
        if direct:
            await self._cmd("AT+CSMS=1", check=False)
        forms = self.profile.cnmi_direct_forms if direct else self.profile.cnmi_forms
        last = None
        for form in forms:
            response = await self._cmd(f"AT+CNMI={form}", check=False)
            if response.result.ok:
                self.health.cnmi = form
                return
            last = response.result
            self._log.info("modem.cnmi_rejected", form=form, result=last.text)
        # No form accepted: we still receive by sweeping, and try again on the next health cycle.
        self.health.cnmi = None
        self._set_state(ModemState.DEGRADED, f"every AT+CNMI form was rejected (last: {last.text if last else '?'})")
