"""Who the modem is and which SIM it holds: manufacturer, model, IMEI, IMSI, ICCID, number.

Every value is read with a command whose answer has a declared shape (drivers.at.answers), so
an unsolicited line can never become an identity. A value that could not be read (the command
timed out or was refused) is left empty and filled in on a later health cycle: receiving never
waits on it.
"""

from __future__ import annotations

from dataclasses import replace

from drivers.at.parse import is_digits, parse_identity_line, split_args, swap_nibbles
from drivers.channel import CommandTimeout
from drivers.modem.types import ModemIdentity
from drivers.profiles import BY_NAME, select_profile


class ModemIdentification:
    """Mixin of :class:`~drivers.modem.Modem`: reads the modem's and the SIM's identity."""

    async def _identify(self) -> None:
        manufacturer = await self._identity_value("AT+CGMI", ("+CGMI:",))
        model = await self._identity_value("AT+CGMM", ("+CGMM:",))
        revision = await self._identity_value("AT+CGMR", ("+CGMR:", "Revision:"))
        imei = await self._identity_value("AT+CGSN", ("+CGSN:",))
        if self.options.profile:
            self.profile = BY_NAME[self.options.profile]
        else:
            self.profile = select_profile(manufacturer, model)
        self.health.profile = self.profile.name
        if self._channel is not None:
            self._channel.use_urcs(self.profile.extra_urcs)
        sim = self.identity
        self.identity = ModemIdentity(manufacturer, model, revision, imei, sim.imsi, sim.iccid, sim.msisdn)

    async def _identity_value(self, command: str, prefixes: tuple[str, ...]) -> str:
        try:
            response = await self._cmd(command, expect=prefixes, check=False)
        except CommandTimeout:
            self._log_once("modem.identity_timeout", command=command)
            return ""
        if not response.result.ok:
            return ""
        return parse_identity_line(response.lines, prefixes) or ""

    async def _read_sim_identity(self) -> None:
        """IMSI, ICCID and number of the SIM in the modem (read again after a reset or switch)."""
        imsi = await self._identity_value("AT+CIMI", ("+CIMI:",))
        iccid = await self._read_iccid()
        msisdn = await self._read_msisdn()
        self.identity = replace(self.identity, imsi=imsi, iccid=iccid, msisdn=msisdn)
        self._log.info("modem.identified", profile=self.profile.name, manufacturer=self.identity.manufacturer,
                       model=self.identity.model, iccid=iccid)

    def _identity_missing(self) -> bool:
        identity = self.identity
        return not identity.imei or (self.health.sim_state == "READY" and not (identity.imsi and identity.iccid))

    async def _read_iccid(self) -> str:
        for spec in self.profile.iccid_commands:
            try:
                response = await self._cmd(spec.command, expect=spec.prefixes, check=False)
            except CommandTimeout:
                continue
            if not response.result.ok:
                continue
            value = parse_identity_line(response.lines, spec.prefixes)
            if not value:
                continue
            if spec.swapped:
                fields = value.split(",")
                if len(fields) < 3 or fields[0] not in ("144", "145"):
                    continue
                value = swap_nibbles(fields[2].strip('"'))
            value = value.rstrip("Ff")
            if value[:2] == "89" and is_digits(value):
                return value
        return ""

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
