"""The SMS commands of the simulated modem (27.005, PDU mode): storage, indications, read, list,
delete, send. A mixin of :class:`~drivers.simulator.engine.SimModem`, kept apart so the engine
module stays one idea: command framing and dispatch."""

from __future__ import annotations

import re


def tpdu_length(pdu_hex: str) -> int:
    smsc_octets = int(pdu_hex[:2], 16) + 1
    return len(pdu_hex) // 2 - smsc_octets


class SmsCommands:
    """Handlers for ``AT+CMGF``/``+CPMS``/``+CNMI``/``+CSMS``/``+CNMA``/``+CMGR``/``+CMGL``/``+CMGD``/``+CMGS``."""

    __slots__ = ()

    def _header(self, kind: str, **fields: int) -> str:
        """A ``+CMGR:``/``+CMGL:`` header as this firmware spells it (27.005 by default)."""
        quirks = self.quirks
        if quirks is None:
            template = "+CMGR: {stat},,{length}" if kind == "cmgr" else "+CMGL: {index},{stat},,{length}"
        else:
            template = quirks.behaviour.cmgr_format if kind == "cmgr" else quirks.behaviour.cmgl_format
            quirks.fired[f"{kind}_format"] += 1
        return template.format(**fields)

    def _cmgf(self, raw: str, body: str) -> None:
        value = body[6:]
        if value in ("0", "1"):
            self.settings.cmgf = int(value)
            self._ok()
        else:
            self._final("ERROR")

    def _cmgf_query(self, raw: str, body: str) -> None:
        self._ok(f"+CMGF: {self.settings.cmgf}")

    def _counts(self, name: str) -> str:
        return f"{len(self._memory(name))},{self.capacity}"

    def _cpms(self, raw: str, body: str) -> None:
        mems = [m.strip().strip('"') for m in body[6:].split(",") if m.strip()]
        if not mems or len(mems) > 3 or any(m not in self.profile.storages for m in mems):
            self._cms(302)
            return
        self.settings.storage = mems[0]
        if len(mems) == 3:
            self.settings.receive_storage = mems[2]
        write = mems[1] if len(mems) > 1 else mems[0]
        cpms = self.quirks.behaviour.cpms if self.quirks is not None else None
        if cpms is not None and cpms.pairs_follow_args:  # Wavecom: "+CPMS: 14,50,14,50" for two memories
            self._ok("+CPMS: " + ",".join(self._counts(m) for m in mems))
            return
        self._ok(f"+CPMS: {self._counts(mems[0])},{self._counts(write)},{self._counts(self.settings.receive_storage)}")

    def _cpms_query(self, raw: str, body: str) -> None:
        read, receive = self.settings.storage, self.settings.receive_storage
        self._ok(f'+CPMS: "{read}",{self._counts(read)},"{read}",{self._counts(read)},'
                 f'"{receive}",{self._counts(receive)}')

    def _cpms_test(self, raw: str, body: str) -> None:
        mems = ",".join(f'"{m}"' for m in self.profile.storages)
        self._ok(f"+CPMS: ({mems}),({mems}),({mems})")

    def _cnmi(self, raw: str, body: str) -> None:
        form = body[6:]
        if form in self.profile.cnmi_rejected:
            self._final("ERROR")
            return
        fields = form.split(",")
        if not fields or not all(f.isdigit() for f in fields if f) or len(fields) > 5:
            self._final("ERROR")
            return
        values = [int(f) if f else 0 for f in fields] + [0] * (5 - len(fields))
        self.settings.cnmi = tuple(values)
        self._ok()
        self.release_held()

    def _cnmi_query(self, raw: str, body: str) -> None:
        self._ok("+CNMI: " + ",".join(str(v) for v in self.settings.cnmi))

    def _cnmi_test(self, raw: str, body: str) -> None:
        self._ok("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)")

    def _csms(self, raw: str, body: str) -> None:
        value = body[6:]
        if value in ("0", "1"):
            self.settings.csms = int(value)
            self._ok("+CSMS: 1,1,1")
        else:
            self._cms(303)

    def _csms_query(self, raw: str, body: str) -> None:
        self._ok(f"+CSMS: {self.settings.csms},1,1,1")

    def _cnma(self, raw: str, body: str) -> None:
        if self._unacked_cmt:
            self._unacked_cmt -= 1
            self._ok()
        else:
            self._cms(340)

    def _csca(self, raw: str, body: str) -> None:
        self._ok('+CSCA: "+79168999100",145')

    def _index_arg(self, body: str, prefix_len: int) -> int | None:
        arg = body[prefix_len:].split(",")[0]
        return int(arg) if arg.isdigit() else None

    def _cmgr(self, raw: str, body: str) -> None:
        if not self._need_sim():
            return
        index = self._index_arg(body, 6)
        if index is None or not self._valid_index(index):
            self._cms(321)
            return
        if self.settings.cmgf != 0:
            self._cms(302)
            return
        if index in self._fresh:
            self._fresh.discard(index)
            self._ok()  # announced but not yet readable
            return
        memory = self._memory(self.settings.storage)
        entry = memory.get(index)
        if entry is None:
            self._cms(321)
            return
        stat, pdu = entry
        memory[index] = (1 if stat == 0 else stat, pdu)
        self._ok(self._header("cmgr", stat=stat, length=tpdu_length(pdu)), pdu)

    def _cmgl(self, raw: str, body: str) -> None:
        if not self._need_sim():
            return
        arg = body[6:] if body.startswith("+CMGL=") else "0"
        if self.settings.cmgf != 0 or not arg.isdigit() or int(arg) > 4:
            self._cms(302) if self.settings.cmgf == 0 else self._final("ERROR")
            return
        wanted = int(arg)
        lines: list[str] = []
        memory = self._memory(self.settings.storage)
        for index in sorted(memory):
            stat, pdu = memory[index]
            if wanted == 4 or stat == wanted:
                lines += [self._header("cmgl", index=index, stat=stat, length=tpdu_length(pdu)), pdu]
                if stat == 0:
                    memory[index] = (1, pdu)
                self._fresh.discard(index)
        self._ok(*lines)

    def _cmgl_test(self, raw: str, body: str) -> None:
        self._ok("+CMGL: (0-4)")

    def _cmgd(self, raw: str, body: str) -> None:
        if not self._need_sim():
            return
        args = body[6:].split(",")
        if not args[0].isdigit():
            self._final("ERROR")
            return
        index, flag = int(args[0]), int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        if not self._valid_index(index) and flag == 0:
            self._cms(321)
            return
        memory = self._memory(self.settings.storage)
        if flag >= 1:
            keep_unread = flag in (1, 2, 3)
            for i in list(memory):
                if flag == 4 or (keep_unread and memory[i][0] == 1):
                    del memory[i]
        else:
            memory.pop(index, None)
        self._fresh.discard(index)
        self._ok()
        self.release_held()

    def _cmgs(self, raw: str, body: str) -> None:
        if not re.fullmatch(r"\+CMGS=\d+", body):
            self._final("ERROR")
            return
        self._prompt = True
        self._in.clear()
        self._out += b"\r\n> "
