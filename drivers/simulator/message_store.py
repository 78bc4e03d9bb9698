"""The simulated modem's message storage and the network's side of it: where an SMS lands (SM or
ME, from the first index this firmware uses), what the network holds while the storage is full or
the SIM unregistered, and when it retries. A mixin of :class:`~drivers.simulator.engine.SimModem`."""

from __future__ import annotations

from drivers.simulator.sms_commands import tpdu_length


class MessageStore:
    """Delivery into the receiving storage (or straight to the host with ``+CNMI`` mt=2), the held
    queue, and the index arithmetic the SMS commands share."""

    __slots__ = ()

    def deliver(self, pdu_hex: str) -> bool:
        """The network delivers one PDU. Returns False if it had to hold it (storage full)."""
        if self.sim is None or not self.sim.registered or self.booting or \
                (self.quirks is not None and not self.quirks.accepting_sms()):
            self.network_queue.append(pdu_hex)
            return False
        mode, mt = self.settings.cnmi[0], self.settings.cnmi[1]
        if mt == 2 and mode:
            self._urc(f"+CMT: ,{tpdu_length(pdu_hex)}")
            self._out += pdu_hex.encode() + b"\r\n"
            if self.settings.csms == 1:
                self._unacked_cmt += 1
            return True
        memory = self._memory(self.settings.receive_storage)
        index = self._free_index(memory)
        if index is None:
            self.network_queue.append(pdu_hex)
            if self.profile.full_urc:
                self._urc(self.profile.full_urc)
            return False
        memory[index] = (0, pdu_hex)
        if mt == 1 and mode:
            if self.profile.empty_first_read:
                self._fresh.add(index)
            self._urc(f'+CMTI: "{self.settings.receive_storage}",{index}')
        return True

    def release_held(self) -> int:
        """The network retries what it held (a slot freed, or the SIM registered)."""
        released = 0
        while self.network_queue and self.sim is not None and self.sim.registered and not self.booting and \
                (self.quirks is None or self.quirks.accepting_sms()):
            if self._free_index(self._memory(self.settings.receive_storage)) is None and self.settings.cnmi[1] != 2:
                break
            self.deliver(self.network_queue.popleft())
            released += 1
        return released

    def fill_storage(self, pdus: list[str]) -> None:
        """Store messages without announcing them, as if they came while nobody listened."""
        for pdu in pdus:
            index = self._free_index(self.storage)
            if index is None:
                self.network_queue.append(pdu)
            else:
                self.storage[index] = (0, pdu)


    def stale_index(self) -> int:
        """The highest free index of the receiving storage (an announcement there finds nothing)."""
        memory = self._memory(self.settings.receive_storage)
        first = self._first_index
        return next((i for i in range(first + self.capacity - 1, first - 1, -1) if i not in memory), first)

    @property
    def _first_index(self) -> int:
        return self.quirks.behaviour.first_index if self.quirks is not None else 1

    def _valid_index(self, index: int) -> bool:
        first = self._first_index  # SIM record numbers start at 1 on most modems, at 0 on some Huawei
        return first <= index < first + self.capacity

    def _memory(self, name: str) -> dict[int, tuple[int, str]]:
        return self.me_storage if name == "ME" else self.storage  # "MT" reads the SIM first

    def _free_index(self, memory: dict[int, tuple[int, str]]) -> int | None:
        for index in range(self._first_index, self._first_index + self.capacity):
            if index not in memory:
                if index == self._first_index != 1 and self.quirks is not None:
                    self.quirks.fired["first_index"] += 1
                return index
        return None

