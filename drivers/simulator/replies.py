"""How the simulated modem spells what it sends: information lines, URCs, final results, CME/CMS
errors, the vendor's reply to a command it does not know. A mixin of
:class:`~drivers.simulator.engine.SimModem`, so command handlers say what to answer, not how."""

from __future__ import annotations


class Replies:
    """Output framing into ``self._out``, with the quirks that bend it (line ends, final results,
    a lost terminator) and V.250 chaining (an ``OK`` in the middle of a chain is not sent)."""

    __slots__ = ()

    def emit_garbage(self, data: bytes) -> None:
        self._out += data

    def emit_urc(self, line: str) -> None:
        self._urc(line)

    def raw_line(self, line: str) -> None:
        """An answer line exactly as a quirk spells it (a final result too, if it is one)."""
        self._line(line)

    def final_line(self, text: str) -> None:
        self._final(text)

    def _line(self, line: str) -> None:
        eol = b"\r\n"
        if self.quirks is not None and self.quirks.behaviour.info_eol != "\r\n":
            eol = self.quirks.behaviour.info_eol.encode()
            self.quirks.fired["info_eol"] += 1
        self._out += b"\r\n" + line.encode() + eol

    def _urc(self, line: str) -> None:
        self._out += b"\r\n" + line.encode() + b"\r\n"

    def _final(self, text: str) -> None:
        if self._chained:
            if text == "OK":
                return
            self._chained = False
            self._chain_failed = True
        if self.quirks is not None:
            text = self.quirks.final(self, text)
        if self.drop_terminator_once:
            self.drop_terminator_once = False
            self._out += b"\r\n" + text.encode()
            return
        self._out += b"\r\n" + text.encode() + b"\r\n"

    def _ok(self, *lines: str) -> None:
        for line in lines:
            self._line(line)
        self._final("OK")

    def _cme(self, code: int, text: str) -> None:
        if self.settings.cmee == 0:
            self._final("ERROR")
        elif self.settings.cmee == 1:
            self._final(f"+CME ERROR: {code}")
        else:
            self._final(f"+CME ERROR: {text}")

    def _cms(self, code: int) -> None:
        self._final(f"+CMS ERROR: {code}" if self.settings.cmee else "ERROR")

    def _unsupported(self) -> None:
        reply = self.quirks.behaviour.unsupported_reply if self.quirks is not None else None
        if reply:
            self.quirks.fired["unsupported_reply"] += 1
        self._final(reply or self.profile.unsupported_reply)

