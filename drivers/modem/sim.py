"""Waiting for a SIM and a radio, shared by the driver and ``simgw scan``.

A SIM may be busy for seconds after power-up (``+CME ERROR: 14``/``SIM busy``, or ``+CPIN: NOT
READY``), and a radio may be off (``+CFUN: 0``/``4``); both pass, by waiting or by switching the
radio on. These functions take the command runner (``AtChannel.command`` or ``Modem._cmd``) so the
scan and the driver behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from drivers.at.parse import AtParseError, parse_cfun, parse_cpin
from drivers.at.protocol import Response
from drivers.at.results import (
    CME_SIM_BUSY,
    CME_SIM_FAILURE,
    CME_SIM_NOT_INSERTED,
    CMS_SIM_BUSY,
    CMS_SIM_NOT_INSERTED,
    FinalResult,
    ResultKind,
)
from drivers.channel import CommandTimeout
from drivers.profiles import Profile

RunCommand = Callable[..., Awaitable[Response]]
"""``AtChannel.command`` or ``Modem._cmd``: ``run(text, expect=..., check=False, implied_final=...)``."""

SIM_BUSY_RETRIES: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
"""Default waits before asking a busy SIM again: 6.5 s in all, bounded."""
SIM_NOT_YET = frozenset({"BUSY", "NOT READY", "UNKNOWN"})
"""SIM states that may pass by themselves: asked again, with backoff."""


def sim_busy(result: FinalResult) -> bool:
    """27.007 §9.2.1 code 14 / 27.005 §3.2.5 code 314, numeric or verbose."""
    return result.kind in (ResultKind.CME_ERROR, ResultKind.CMS_ERROR) and result.code in (CME_SIM_BUSY, CMS_SIM_BUSY)


def sim_state_of(result: FinalResult) -> str:
    """The SIM state an error answer to ``AT+CPIN?`` means (27.007 §9.2.1 codes 10, 13, 14)."""
    if sim_busy(result):
        return "BUSY"
    if result.code in (CME_SIM_NOT_INSERTED, CME_SIM_FAILURE, CMS_SIM_NOT_INSERTED):
        return "NOT INSERTED"
    return "UNKNOWN"


async def patiently(run: RunCommand, command: str, retries: tuple[float, ...], **kwargs: object) -> Response:
    """Run ``command``; while the SIM is busy, run it again after each of ``retries``."""
    response = await run(command, check=False, **kwargs)
    for delay in retries:
        if not sim_busy(response.result):
            break
        await asyncio.sleep(delay)
        response = await run(command, check=False, **kwargs)
    return response


async def read_sim_state(run: RunCommand, profile: Profile) -> str:
    """``READY``, ``SIM PIN``, ``NOT INSERTED``... or ``BUSY``/``UNKNOWN`` from an error."""
    response = await run("AT+CPIN?", check=False, implied_final="AT+CPIN?" in profile.no_final_after)
    for line in response.lines:
        if line.startswith("+CPIN:"):
            return parse_cpin(line)
    return sim_state_of(response.result)


async def wait_for_sim(run: RunCommand, profile: Profile, retries: tuple[float, ...],
                       on_retry: Callable[[str, float], None] | None = None) -> str:
    """The SIM state, asked again after each of ``retries`` while it may still pass by itself
    (python-gsmmodem's fakemodems.py has Qualcomm firmware answering ``+CME ERROR: 14`` for a
    while after power-up; ModemManager retries on it too)."""
    state = await read_sim_state(run, profile)
    for delay in retries:
        if state not in SIM_NOT_YET:
            break
        if on_retry is not None:
            on_retry(state, delay)
        await asyncio.sleep(delay)
        state = await read_sim_state(run, profile)
    return state


async def radio_mode(run: RunCommand) -> int | None:
    """``+CFUN`` <fun>: 1 on, 0/4 off; None when the modem does not say (or does not answer:
    a firmware that swallows the query must not cost the session)."""
    try:
        response = await run("AT+CFUN?", check=False)
    except CommandTimeout:
        return None
    for line in response.lines:
        with contextlib.suppress(AtParseError):
            mode = parse_cfun(line)
            if mode is not None:
                return mode
    return None


async def switch_radio_on(run: RunCommand, profile: Profile, timeout: float = 5.0,
                          on_switch: Callable[[int, str], None] | None = None) -> int | None:
    """Switch a radio found off on with the profile's commands in order (``AT+CFUN=1``, ZTE's
    ``AT+ZOPRT=5``) until ``AT+CFUN?`` says 1; returns the last mode read."""
    mode = await radio_mode(run)
    if mode is None or mode == 1:
        return mode
    for command in profile.radio_on_commands:
        if on_switch is not None:
            on_switch(mode, command)
        try:
            accepted = (await run(command, timeout=timeout, check=False)).result.ok
        except CommandTimeout:
            accepted = True  # switching the radio on can outlast the timeout: AT+CFUN? says how it went
        if not accepted:
            continue
        mode = await radio_mode(run)
        if mode is None or mode == 1:
            return mode
    return mode
