"""Receiving: +CMTI reads, sweeps of the whole storage, +CMT direct delivery, SIM switches.

The receive contract: every stored message is handed to the ``sink`` as a :class:`ReceivedPart`;
only when the sink returns (it has stored the part durably) is the message deleted from the SIM.
A sink that raises leaves the message on the SIM, and the next sweep offers it again, so the sink
must tolerate seeing a part twice. One reader task per modem serialises CMTI reads and sweeps, so a
sweep and a ``+CMTI`` never race to delete the same index. The sweep runs whatever the identity
or health probes said: receiving never waits on a probe that failed.
"""

from __future__ import annotations

import asyncio

from drivers.at.parse import AtParseError, StoredPdu, parse_cmgl, parse_cmgr
from drivers.at.results import CMS_INVALID_INDEX, CMS_MEMORY_FULL
from drivers.channel import AtError, CommandFailed, CommandTimeout, PortGone, Priority
from drivers.modem.types import ModemResetting, ModemUnresponsive, ReceivedPart, SimSelect, SimSwitching, Work
from drivers.sms.pdu import Decoded, PduError, decode_pdu

READER_FATAL = (PortGone, CommandTimeout, ModemResetting, ModemUnresponsive)
"""What ends the reader (and the port session): everything else is one failed work item."""


class ModemReceiver:
    """Mixin of :class:`~drivers.modem.Modem`: the reader task and what it does."""

    def _enqueue_index(self, index: int, storage: str | None) -> None:
        if index in self._queued_indexes:
            return
        self._queued_indexes.add(index)
        self._seq += 1
        self._work.put_nowait(Work(self._seq, index, storage))

    def _enqueue_sweep(self) -> None:
        self._seq += 1
        self._work.put_nowait(Work(self._seq))

    async def _reader(self) -> None:
        """Serve the work queue in order. A work item that fails on a bad answer (a refused read,
        an unreadable line) is logged and counted, and the reader carries on: a modem must never
        stop reading because of one message (issue 12 finding 4). What means the port or the
        session is over (gone, timed out, resetting) ends the reader, and the session with it."""
        last_sweep_seq = -1
        while True:
            work = await self._work.get()
            try:
                last_sweep_seq = await self._do(work, last_sweep_seq)
            except READER_FATAL:
                raise
            except Exception as exc:
                self.health.reader_errors += 1
                self._log_once("modem.reader_error", work="switch" if work.switch else
                               ("read" if work.index is not None else "sweep"),
                               error=f"{type(exc).__name__}: {exc}")

    async def _do(self, work: Work, last_sweep_seq: int) -> int:
        if work.switch is not None:
            await self._switch(*work.switch)
        elif work.index is not None:
            self._queued_indexes.discard(work.index)
            if work.seq >= last_sweep_seq:  # else a sweep issued after this +CMTI has already read it
                await self._read_index(work.index, work.storage)
        else:
            self._seq += 1
            last_sweep_seq = self._seq
            await self.sweep()
        return last_sweep_seq

    async def _read_index(self, index: int, storage: str | None) -> None:
        for delay in (0.0, *self.options.empty_read_retries):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._cmd(f"AT+CMGR={index}", priority=Priority.SMS)
            except CommandFailed as exc:
                # 321 "invalid memory index" (numeric or verbose): whatever was there may have moved.
                # Any other refusal: the sweep will look at everything, and deliver what is there.
                self._log.info("modem.index_vanished" if exc.cms == CMS_INVALID_INDEX else "modem.read_refused",
                               index=index, result=exc.result.text)
                self._enqueue_sweep()
                return
            try:
                stored = parse_cmgr(response.lines)
            except AtParseError as exc:
                self._log_once("modem.bad_cmgr", index=index, error=str(exc))
                stored = None
            if stored is not None:
                await self._deliver(StoredPdu(index, stored.status, stored.pdu_hex), storage)
                return
        # Announced but still empty after the retries: some firmware announces before it commits.
        self._log.info("modem.announced_index_empty", index=index)
        self._enqueue_sweep()

    async def _switch(self, select: SimSelect, done: asyncio.Future[None]) -> None:
        """Read what the outgoing SIM holds (it leaves with its identity), connect the new SIM,
        reset the modem so it reads the new card, and end this port session."""
        if done.done():
            return  # the caller gave up waiting
        try:
            await self.sweep()
            await select(self)
        except Exception as exc:
            done.set_exception(exc)
            if isinstance(exc, (PortGone, CommandTimeout)):
                raise
            return
        done.set_result(None)
        self.ready.clear()
        self.settled.clear()
        try:
            await self._cmd(self.profile.reset_command, timeout=3.0, priority=Priority.URGENT, check=False)
        except CommandTimeout:
            pass  # many firmwares reset before they answer
        raise SimSwitching(f"{self.path}: SIM switched, modem reset with {self.profile.reset_command}")

    async def sweep(self) -> int:
        """Read everything stored (``AT+CMGL=4``: all, PDU mode) and hand each to the sink."""
        response = await self._cmd("AT+CMGL=4", timeout=self.options.list_timeout, priority=Priority.SMS,
                                   check=False)
        if not response.result.ok:
            if response.result.code == CMS_MEMORY_FULL:
                self._log.warning("modem.storage_full")
            self._log_once("modem.sweep_failed", result=response.result.text[:80])
            return 0
        errors: list[str] = []
        stored = parse_cmgl(response.lines, errors)
        for error in errors:
            self._log_once("modem.bad_cmgl", error=error)
        for item in stored:
            await self._deliver(item, self.health.storage)
        if stored:
            self._log.info("modem.swept", count=len(stored))
        return len(stored)

    async def _deliver(self, stored: StoredPdu, storage: str | None) -> None:
        part = self._make_part(stored.pdu_hex, storage, stored.index)
        try:
            await self._sink(part)
        except Exception as exc:
            self.health.sink_failures += 1
            self._log.error("modem.sink_failed", index=stored.index, error=f"{type(exc).__name__}: {exc}")
            return  # not stored, so not deleted: the next sweep offers it again
        if stored.index is not None:
            try:
                await self._cmd(f"AT+CMGD={stored.index}", priority=Priority.SMS)
            except CommandFailed as exc:
                if exc.cms != CMS_INVALID_INDEX:
                    raise

    def _make_part(self, pdu_hex: str, storage: str | None, index: int | None) -> ReceivedPart:
        sms: Decoded | None
        try:
            sms = decode_pdu(pdu_hex)
            error = None
        except PduError as exc:
            sms, error = None, str(exc)
            self.health.sms_undecodable += 1
            self._log.warning("modem.undecodable_pdu", index=index, error=error)
        self.health.sms_received += 1
        self.health.last_sms_at = self._clock()
        return ReceivedPart(self.path, self.identity, storage, index, pdu_hex.strip(), sms, error,
                            self._wall_clock(), self._clock())

    def _spawn_direct(self, pdu_hex: str) -> None:
        """Handle a ``+CMT`` in a task the modem owns: kept until done, its failure logged (with
        the port) rather than lost, and cancelled by :meth:`stop`."""
        task = asyncio.get_running_loop().create_task(self._on_direct(pdu_hex), name=f"modem-cmt:{self.path}")
        self._direct_tasks.add(task)
        task.add_done_callback(self._direct_done)

    def _direct_done(self, task: asyncio.Task[None]) -> None:
        self._direct_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._log_once("modem.direct_failed", error=f"{type(exc).__name__}: {exc}")

    async def _on_direct(self, pdu_hex: str) -> None:
        """``+CMT``: the sink stores it, then we acknowledge so the network stops retrying."""
        try:
            await self._sink(self._make_part(pdu_hex, None, None))
        except Exception as exc:
            self.health.sink_failures += 1
            self._log.error("modem.sink_failed", error=f"{type(exc).__name__}: {exc}")
            return  # no +CNMA: the network will redeliver
        try:
            await self._cmd("AT+CNMA", priority=Priority.URGENT, check=False)
        except AtError as exc:
            self._log.info("modem.cnma_failed", error=str(exc))
