"""Bringing a modem up: sync, identify, radio on, SIM ready, PDU mode, storage, indications.

Nothing here is final. A SIM that is busy at power-up is asked again with backoff and then on
every health cycle; a radio found off is switched on; SMS commands refused before the modem said
``SMS Ready`` are retried once it does. When the SIM becomes ready the modem initialises fully.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from drivers.at.parse import AtParseError, parse_cfun, parse_cpin, parse_cpms
from drivers.at.results import (
    CME_SIM_BUSY,
    CME_SIM_FAILURE,
    CME_SIM_NOT_INSERTED,
    CMS_SIM_BUSY,
    CMS_SIM_NOT_INSERTED,
    FinalResult,
)
from drivers.channel import CommandFailed, CommandTimeout, Priority
from drivers.modem.types import ModemState, ModemUnresponsive, ReceiveMode

SIM_NOT_YET = frozenset({"BUSY", "NOT READY", "UNKNOWN"})
"""SIM states that may pass by themselves: asked again, with backoff."""


def sim_state_of(result: FinalResult) -> str:
    """The SIM state an error answer to ``AT+CPIN?`` means (27.007 §9.2.1 codes 10, 13, 14)."""
    if result.code in (CME_SIM_BUSY, CMS_SIM_BUSY):
        return "BUSY"
    if result.code in (CME_SIM_NOT_INSERTED, CME_SIM_FAILURE, CMS_SIM_NOT_INSERTED):
        return "NOT INSERTED"
    return "UNKNOWN"


class ModemSetup:
    """Mixin of :class:`~drivers.modem.Modem`: the initialisation sequence."""

    async def _initialise(self, *, sim_retries: tuple[float, ...] | None = None) -> None:
        """Initialise the modem; ``sim_retries`` overrides the options' SIM-busy backoff (the
        health cycle asks once). Sets :attr:`settled` when done, and :attr:`ready` if the SIM is
        ready; when it is not, stored SMS are still swept."""
        await self._sync()
        self._answered_at = True
        await self._cmd("ATE0", check=False)
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

    # ---------------------------------------------------------------------------------- radio
    async def _radio_mode(self) -> int | None:
        response = await self._cmd("AT+CFUN?", check=False)
        for line in response.lines:
            with contextlib.suppress(AtParseError):
                mode = parse_cfun(line)
                if mode is not None:
                    return mode
        return None

    async def _ensure_radio_on(self) -> None:
        """``+CFUN: 0``/``4`` (ZTE dongles boot that way): switch the radio on with the
        profile's commands in order (``AT+CFUN=1``, ZTE's ``AT+ZOPRT=5``) until it is on."""
        mode = await self._radio_mode()
        self.health.radio = mode
        if mode is None or mode == 1:
            return
        for command in self.profile.radio_on_commands:
            self._log.warning("modem.radio_off", cfun=mode, command=command)
            response = await self._cmd(command, timeout=max(self.options.command_timeout, 5.0), check=False)
            if not response.result.ok:
                continue
            mode = await self._radio_mode()
            self.health.radio = mode
            if mode is None or mode == 1:
                return
        self._log_once("modem.radio_stays_off", cfun=mode)

    # ------------------------------------------------------------------------------------ SIM
    async def _sim_state(self) -> str:
        response = await self._cmd("AT+CPIN?", check=False)
        for line in response.lines:
            if line.startswith("+CPIN:"):
                return parse_cpin(line)
        return sim_state_of(response.result)

    async def _check_sim(self, retries: tuple[float, ...]) -> bool:
        """True when the SIM is ready; a busy or not-yet-ready SIM is asked again after each of
        ``retries`` (python-gsmmodem's fakemodems.py has Qualcomm firmware answering
        ``+CME ERROR: 14`` for a while after power-up)."""
        sim_state = await self._sim_state()
        for delay in retries:
            if sim_state not in SIM_NOT_YET:
                break
            self._log.info("modem.sim_not_ready", sim_state=sim_state, retry_in=delay)
            await asyncio.sleep(delay)
            sim_state = await self._sim_state()
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
        """Use the first storage the modem accepts for reading, writing and receiving."""
        for storage in self.profile.storages:
            response = await self._cmd(f'AT+CPMS="{storage}","{storage}","{storage}"', check=False)
            if response.result.ok:
                self.health.storage = storage
                self._record_cpms(response.lines)
                return
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
