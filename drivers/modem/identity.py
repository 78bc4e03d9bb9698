"""Who the modem is and which SIM it holds: manufacturer, model, IMEI, IMSI, ICCID, number.

Every value is read with a command whose answer has a declared shape (drivers.at.answers), so
an unsolicited line can never become an identity. A value that could not be read (the command
timed out or was refused) is left empty and filled in on a later health cycle: receiving never
waits on it. :func:`read_value` and :func:`read_iccid` are shared with ``simgw scan``
(drivers.probe), so the scan shows the identity the driver uses.
"""

from __future__ import annotations

from dataclasses import replace

from drivers.at.answers import shape_of
from drivers.at.parse import is_digits, parse_identity_line, split_args, swap_nibbles
from drivers.at.protocol import Response
from drivers.channel import CommandTimeout
from drivers.modem.sim import SIM_BUSY_RETRIES, RunCommand, patiently
from drivers.modem.types import ModemIdentity
from drivers.profiles import BY_NAME, IccidCommand, Profile, select_profile

IDENTITY_LABELS: dict[str, tuple[str, ...]] = {
    "AT+CGMI": ("+CGMI:", "Manufacturer:"),
    "AT+CGMM": ("+CGMM:", "Model:"),
    "AT+CGMR": ("+CGMR:", "Revision:"),
    "AT+CGSN": ("+CGSN:", "IMEI:"),
    "AT+CIMI": ("+CIMI:",),
}
"""The labels a value may come with (``+CGMR: x``, ``Revision: x``), stripped before use."""


async def read_value(run: RunCommand, command: str, busy_retries: tuple[float, ...] = SIM_BUSY_RETRIES) -> str:
    """One identity value, or "" when the modem refused or did not answer. A SIM-busy refusal
    (``AT+CIMI`` early after power-up) is asked again after each of ``busy_retries``."""
    prefixes = IDENTITY_LABELS[command]
    try:
        response = await patiently(run, command, busy_retries, expect=prefixes)
    except CommandTimeout:
        return ""
    if not response.result.ok:
        return ""
    return shape_of(command).extract(parse_identity_line(response.lines, prefixes) or "")


def iccid_of(spec: IccidCommand, response: Response) -> str:
    """The ICCID in ``spec``'s answer, or "" (not an 89... number: the wrong thing)."""
    if not response.result.ok:
        return ""
    value = parse_identity_line(response.lines, spec.prefixes)
    if not value:
        return ""
    if spec.swapped:
        fields = value.split(",")
        if len(fields) < 3 or fields[0] not in ("144", "145"):
            return ""
        value = swap_nibbles(fields[2].strip('"'))
    value = value.rstrip("Ff")
    return value if value[:2] == "89" and is_digits(value) else ""


async def read_iccid(run: RunCommand, profile: Profile, busy_retries: tuple[float, ...] = SIM_BUSY_RETRIES) -> str:
    """The SIM's ICCID, by the profile's commands in order (vendors spell it differently)."""
    for spec in profile.iccid_commands:
        try:
            response = await patiently(run, spec.command, busy_retries, expect=spec.prefixes)
        except CommandTimeout:
            continue
        value = iccid_of(spec, response)
        if value:
            return value
    return ""


class ModemIdentification:
    """Mixin of :class:`~drivers.modem.Modem`: reads the modem's and the SIM's identity."""

    async def _identify(self) -> None:
        manufacturer = await read_value(self._cmd, "AT+CGMI")
        model = await read_value(self._cmd, "AT+CGMM")
        revision = await read_value(self._cmd, "AT+CGMR")
        imei = await read_value(self._cmd, "AT+CGSN")
        if not (manufacturer and imei):
            self._log_once("modem.identity_incomplete", manufacturer=manufacturer, imei=bool(imei))
        if self.options.profile:
            self.profile = BY_NAME[self.options.profile]
        else:
            self.profile = select_profile(manufacturer, model)
        self.health.profile = self.profile.name
        if self._channel is not None:
            self._channel.use_urcs(self.profile.extra_urcs)
        sim = self.identity
        self.identity = ModemIdentity(manufacturer, model, revision, imei, sim.imsi, sim.iccid, sim.msisdn)

    async def _read_sim_identity(self) -> None:
        """IMSI, ICCID and number of the SIM in the modem (read again after a reset or switch)."""
        imsi = await read_value(self._cmd, "AT+CIMI", self.options.sim_busy_retries)
        iccid = await read_iccid(self._cmd, self.profile, self.options.sim_busy_retries)
        msisdn = await self._read_msisdn()
        self.identity = replace(self.identity, imsi=imsi, iccid=iccid, msisdn=msisdn)
        self._log.info("modem.identified", profile=self.profile.name, manufacturer=self.identity.manufacturer,
                       model=self.identity.model, iccid=iccid)

    def _identity_missing(self) -> bool:
        identity = self.identity
        return not identity.imei or (self.health.sim_state == "READY" and not (identity.imsi and identity.iccid))

    async def _read_msisdn(self) -> str:
        try:
            response = await self._cmd("AT+CNUM", check=False)
        except CommandTimeout:
            return ""
        for line in response.lines:
            if line.startswith("+CNUM:"):
                fields = split_args(line[6:])
                if len(fields) >= 2 and fields[1]:
                    return fields[1]
        return ""
