"""The simulated modem's life cycle: power on, reboot (start and finish, timed by the pty shell),
SIM pulled, inserted or swapped, registration, and the periodic and quirk ticks. A mixin of
:class:`~drivers.simulator.engine.SimModem`; tests and the farm inject their faults through it."""

from __future__ import annotations

from collections import deque

from drivers.simulator.state import Settings, SimCard


class LifeCycle:
    """What happens to the unit rather than what the host asks of it."""

    __slots__ = ()

    def periodic(self) -> None:
        if self.profile.periodic_urc and not self.booting:
            self._urc(self.profile.periodic_urc.format(rssi=self.rssi))


    def power_on(self) -> None:
        """The unit is switched on: quirks that shape the boot (radio off, SIM busy) start now."""
        if self.quirks is not None:
            self.quirks.on_boot(self, announce=False)

    def quirk_tick(self) -> None:
        if self.quirks is not None:
            self.quirks.tick(self)

    def start_reboot(self) -> None:
        self.booting = True
        self.wedged = False
        self.settings = Settings()
        self._in.clear()
        self._prompt = False
        self._fresh.clear()

    def finish_reboot(self) -> None:
        self.booting = False
        for urc in self.profile.boot_urcs:
            self._urc(urc)
        if self.quirks is not None:
            self.quirks.on_boot(self)
        self.release_held()

    def pull_sim(self) -> None:
        self.sim = None
        self._urc("+CPIN: NOT INSERTED")

    def insert_sim(self, sim: SimCard) -> None:
        self.sim = sim
        self._urc("+CPIN: READY")
        self.release_held()

    def swap_sim(self, card: SimCard | None) -> None:
        """A bank or the modem's SIM switch connects another card. The outgoing card takes its SM
        storage and held SMS along; the new one is not registered until the modem restarts."""
        if self.sim is not None:
            self.sim.storage, self.sim.held, self.sim.registered = self.storage, self.network_queue, False
        self.sim = card
        if card is None:
            self.storage, self.network_queue = {}, deque()
        else:
            self.storage, self.network_queue, card.registered = card.storage, card.held, False

    def register(self) -> None:
        """The card in the slot registers with the network, which hands over what it held."""
        if self.sim is not None and not self.sim.never_registers:
            self.sim.registered = True
            self.release_held()

