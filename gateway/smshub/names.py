"""The hub's names for countries, operators and services, and ours, both ways.

Countries: the protocol's examples name them in lower-case English ("russia", "ukraine",
OnlineSim's "germany"); the full list is the hub's (https://smshub.org/countries), so every name
can be overridden in ``[smshub.countries]`` (ISO code = hub name). Operators: the SIM's network
name (AT+COPS) in lower case, overridable in ``[smshub.operators]`` (network name = hub name).
A country where some SIM's operator is unknown is offered as operator ``any`` (Appendix 2: "any"
only where the agent cannot tell operators apart in that country).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = "any"
COUNTRY_NAMES: dict[str, str] = {
    "RU": "russia", "UA": "ukraine", "KZ": "kazakhstan", "BY": "belarus", "AM": "armenia", "MD": "moldova",
    "LV": "latvia", "LT": "lithuania", "EE": "estonia", "GE": "georgia", "UZ": "uzbekistan", "KG": "kyrgyzstan",
    "TJ": "tajikistan", "TM": "turkmenistan", "AZ": "azerbaijan", "PL": "poland", "DE": "germany",
    "GB": "united kingdom", "FR": "france", "ES": "spain", "IT": "italy", "NL": "netherlands", "TR": "turkey",
    "IN": "india", "ID": "indonesia", "PH": "philippines", "VN": "vietnam", "TH": "thailand", "BR": "brazil",
    "MX": "mexico", "US": "usa",
}


@dataclass(frozen=True, slots=True)
class Names:
    """Name translation with the supplier's overrides; our service name -> the hub's code."""

    services: dict[str, str] = field(default_factory=dict)  # ours -> hub short code
    countries: dict[str, str] = field(default_factory=dict)  # ISO -> hub name (overrides)
    operators: dict[str, str] = field(default_factory=dict)  # network name, lower case -> hub name

    def country(self, iso: str | None) -> str | None:
        if not iso:
            return None
        return self.countries.get(iso.upper()) or COUNTRY_NAMES.get(iso.upper())

    def iso(self, hub_country: str) -> str | None:
        wanted = hub_country.strip().lower()
        for iso in {*COUNTRY_NAMES, *self.countries}:
            if self.country(iso) == wanted:
                return iso
        return None

    def operator(self, network: str | None) -> str | None:
        """The hub's operator name for a SIM's network name; None if the network is unknown."""
        if not network or network == "?":
            return None
        key = network.strip().lower()
        return self.operators.get(key, key)

    def service(self, hub_code: str) -> str | None:
        """Our service name for the hub's code; None for a code the supplier does not sell."""
        wanted = hub_code.strip().lower()
        return next((ours for ours, code in self.services.items() if code.lower() == wanted), None)
