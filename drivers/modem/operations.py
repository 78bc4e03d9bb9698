"""What the gateway asks of a modem beyond receiving: SIM switches, re-initialisation, waiting for
registration, USSD, and single AT commands queued with the driver's own work."""

from __future__ import annotations

import asyncio

from drivers.at.protocol import Response
from drivers.modem.types import ModemUnresponsive, SimSelect, Work


class ModemOperations:
    """Mixin of :class:`~drivers.modem.Modem`: requests from outside the driver."""

    async def switch_sim(self, select: SimSelect, *, timeout: float) -> None:
        """Have ``select`` connect another SIM, between two reads (never in the middle of one).
        Returns once it did; the modem then resets and :attr:`settled` is set when it is back."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        self._work.put_nowait(Work(self._seq, switch=(select, done)))
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            done.cancel()
            raise ModemUnresponsive(f"{self.path}: not serving, the SIM switch did not start within {timeout:g}s")

    def request_reinit(self) -> None:
        """Initialise again (the SIM became ready after the modem had given up on it)."""
        self.ready.clear()
        self._reinit_needed.set()

    async def wait_registered(self, timeout: float, poll: float = 1.0) -> bool:
        """Probe until the SIM is registered (home or roaming), or ``timeout`` passes."""
        deadline = self._clock() + timeout
        while True:
            await self.probe_health()
            registration = self.health.registration
            if registration is not None and registration.registered:
                return True
            if self._clock() + poll > deadline:
                return False
            await asyncio.sleep(poll)

    async def ussd(self, code: str, timeout: float = 20.0) -> str | None:
        """Send a USSD request and return the network's text (None if it answered nothing, or the
        modem refused the request: busy, no SIM, no network)."""
        self._ussd = asyncio.get_running_loop().create_future()
        try:
            response = await self._cmd(f'AT+CUSD=1,"{code}",15', timeout=timeout, check=False)
            if not response.result.ok:
                self._log.info("modem.ussd_refused", result=response.result.text)
                return None
            status, text = await asyncio.wait_for(asyncio.shield(self._ussd), timeout)
            return text if status in (0, 1) else None
        except asyncio.TimeoutError:
            return None
        finally:
            self._ussd = None

    async def command(self, text: str, *, expect: tuple[str, ...] = (), timeout: float | None = None,
                      check: bool = True) -> Response:
        """One AT command on this modem's channel, queued with the driver's own work."""
        return await self._cmd(text, expect=expect, timeout=timeout, check=check)
