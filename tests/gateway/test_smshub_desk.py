"""The desk on the core with a fake clock and a real SQLite file (no modems): names, the "any"
operator rule, and what the statuses do to the history both marketplaces share."""

from __future__ import annotations

from gateway.config import LeaseConfig
from gateway.core import GatewayCore
from gateway.smshub import protocol
from gateway.smshub.desk import HubDesk
from gateway.smshub.names import Names
from gateway.store import Store
from tests.gateway.core.test_core import Clocks

SIMS = [("/dev/a", "8970100000000000011", "+79000000011", "Beeline"),
        ("/dev/b", "8970100000000000012", "+79000000012", "MTS RUS"),
        ("/dev/c", "8970100000000000013", "+380501234567", "Kyivstar")]


def desk_on(tmp_path, operators: dict[str, str | None] | None = None) -> tuple[HubDesk, GatewayCore, Clocks]:
    clocks = Clocks()
    store = Store(str(tmp_path / "simgw.db"))
    store.open()
    core = GatewayCore(store, LeaseConfig(), mono=lambda: clocks.mono, wall=lambda: clocks.wall)
    core.start()
    for port, iccid, number, operator in SIMS:
        core.set_operator(port, (operators or {}).get(port, operator))
        core.bind_sim(port, iccid, number, True)
    names = Names({"vk": "vk", "whatsapp": "wa"}, {}, {"mts rus": "mts"})
    return HubDesk(core, names, 86400.0, mono=lambda: clocks.mono, wall=lambda: clocks.wall), core, clocks


def operator_map(reply: dict) -> dict[str, dict]:
    return {entry["country"]: entry["operatorMap"] for entry in reply["countryList"]}


def buy(desk: HubDesk, service: str, country: str = "russia", operator: str = "any", exclude=()) -> dict:
    return desk.get_number(protocol.GetNumber("k", country, operator, service, 10.0, 643, tuple(exclude)))


def test_services_by_country_and_operator_with_overrides(tmp_path):
    desk, _, _ = desk_on(tmp_path)
    assert operator_map(desk.services()) == {
        "russia": {"beeline": {"vk": 1, "wa": 1}, "mts": {"vk": 1, "wa": 1}},
        "ukraine": {"kyivstar": {"vk": 1, "wa": 1}}}
    assert buy(desk, "vk", "russia", "mts")["number"] == 79000000012
    assert buy(desk, "vk", "ukraine", "kyivstar")["number"] == 380501234567
    assert buy(desk, "vk", "ukraine")["status"] == "NO_NUMBERS"
    assert buy(desk, "vk", "atlantis")["status"] == "NO_NUMBERS"
    assert operator_map(desk.services())["russia"]["mts"] == {"vk": 0, "wa": 0}  # listed, 0 while taken


def test_a_country_where_an_operator_is_unknown_is_offered_as_any(tmp_path):
    desk, _, _ = desk_on(tmp_path, {"/dev/b": None})
    offered = operator_map(desk.services())
    assert offered["russia"] == {"any": {"vk": 2, "wa": 2}} and offered["ukraine"] == {"kyivstar": {"vk": 1, "wa": 1}}
    assert buy(desk, "wa", "russia", "any")["status"] == "SUCCESS"


def test_statuses_drive_the_history_simgw_v1_sees_too(tmp_path):
    desk, core, clocks = desk_on(tmp_path)
    sold = buy(desk, "vk", "russia", "beeline")
    assert desk.finish(protocol.FinishActivation("k", sold["activationId"], protocol.SOLD)) == {"status": "SUCCESS"}
    assert core.engine.used_for("+79000000011", "vk", clocks.mono)
    assert "vk" in core.inventory()["numbers"][0]["services_used"]  # the simgw.v1 inventory knows
    refused = core.open_lease("V1", "+79000000011", "vk")[-1]  # and simgw.v1 will not lease it for vk
    assert refused.code == "number_used_for_service"
    assert buy(desk, "vk", "russia", "beeline")["status"] == "NO_NUMBERS"
    assert buy(desk, "wa", "russia", "beeline")["status"] == "SUCCESS"
    core.store.close()
    core2_store = Store(core.store.path)
    core2_store.open()
    restarted = GatewayCore(core2_store, LeaseConfig(), mono=lambda: clocks.mono, wall=lambda: clocks.wall)
    restarted.start()  # after a restart the held lease and the history are back
    assert restarted.engine.used_for("+79000000011", "vk", clocks.mono)
    (held,) = restarted.engine.active()
    assert held.held and held.id == "hub-2" and held.deadline == clocks.mono + 86400.0
