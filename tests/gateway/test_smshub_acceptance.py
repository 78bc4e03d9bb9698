"""The hub's seven published acceptance checks, each against the real daemon over HTTP on
127.0.0.1 (simulated modems on real ptys, the real SQLite file).

Source: "SMSHUB Agent Protocol", version of March 6, 2024, section "Protocol testing", tests
1-7; the same list on OnlineSim's https://onlinesim.io/docs/api/reseller_en/sms_hub/testing.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

import pytest

from drivers.simulator.bank import SimBank
from gateway.runtime.gateway import Gateway
from gateway.domain.leases import LeaseState, Refused
from gateway.smshub.names import Names
from gateway.smshub.protocol import Flavour
from gateway.smshub.settings import SmshubConfig
from gateway.tools.hub import RefHub
from tests.conftest import run, wait_until
from tests.gateway.bank_env import BANK_OPTIONS, SCALE, prefill_inventory, rig_config
from tests.gateway.smshub_env import KEY, SERVICES, HubRig


def audit(rig: HubRig, lease_id: str) -> list[str]:
    return [kind for _, kind, _ in rig.gateway.read(lambda store: store.audit_trail(lease_id))]


# ------------------------------------------------------------------------------- check 1
def test_finish_activation_is_idempotent_and_the_agent_never_finishes_one_itself(tmp_path):
    """Check 1: a repeated FINISH_ACTIVATION for a known activation answers SUCCESS, and only
    the hub's request ends an activation: not the 20-minute window, not the 15-minute
    auto-finish after an SMS (a simgw.v1 lease beside it does end, so the clock jump is real)."""
    async def scenario():
        async with HubRig(tmp_path, 2) as rig:
            core = rig.gateway.core
            sold = await rig.hub.get_number("russia", "vk")
            assert sold["status"] == "SUCCESS", sold
            lease_id = f"hub-{sold['activationId']}"
            other = next(n for n in rig.numbers() if n.lstrip("+") != str(sold["number"]))
            opened = await rig.gateway.call(core.open_lease, "V1", other, "telegram")
            assert opened[-1].lease.state is LeaseState.WAITING
            rig.farm.send_sms(rig.modem_of(sold["number"]), "VK", "VK: 33708 your code")
            rig.farm.send_sms(rig.modem_of(other), "Telegram", "Telegram code 111")
            await wait_until(lambda: core.engine.get("V1").sms_count == 1 and core.engine.get(lease_id).sms_count == 1,
                             10, "both SMS routed")
            await rig.jump(3 * 3600)  # past every window and auto-finish of the policy
            await wait_until(lambda: not core.engine.get("V1").state.active, 5, "the simgw.v1 lease auto-finished")
            assert core.engine.get(lease_id).state is LeaseState.RECEIVED  # the hub's is still its own
            assert (await rig.hub.finish(sold["activationId"], 3)) == {"status": "SUCCESS"}
            assert core.engine.get(lease_id).state is LeaseState.FINISHED
            for status in (3, 4):  # a repeat, even one that says otherwise, changes nothing
                assert (await rig.hub.finish(sold["activationId"], status)) == {"status": "SUCCESS"}
            trail = audit(rig, lease_id)
            assert trail == ["hub.activation", "opened", "sms", "hub.finish", "finished"], trail
            unknown = await rig.hub.finish(sold["activationId"] + 1000, 3)
            assert unknown["status"] == "ERROR" and unknown["error"]

    run(scenario())


# ------------------------------------------------------------------------------- check 2
@pytest.mark.slow
def test_every_sms_is_pushed_until_success_and_never_after(tmp_path):
    """Check 2: an SMS is pushed again (every push_retry) while the hub answers anything but
    SUCCESS, or is away, across a daemon restart; once it answers SUCCESS, never again."""
    async def scenario():
        async with HubRig(tmp_path, 2, push_retry=0.3) as rig:
            sold = await rig.hub.get_number("russia", "wa")
            modem = rig.modem_of(sold["number"])
            rig.hub.mode = "error"
            rig.farm.send_sms(modem, "WhatsApp", "WhatsApp code 512-907")
            await wait_until(lambda: len(rig.hub.log.pushes) >= 3, 10, "three refused pushes")
            rig.hub.mode = "http500"
            await wait_until(lambda: rig.hub.log.pushes[-1].answer == "http500", 5, "a push answered HTTP 500")
            await rig.hub.stop_push_server()  # the hub goes away
            rig.farm.send_sms(modem, "WhatsApp", "WhatsApp code 777-000")
            await wait_until(lambda: len(rig.gateway.read(lambda s: s.messages(lease_id=f"hub-{sold['activationId']}")))
                             == 2, 10, "the second SMS stored")
            await rig.stop_gateway()  # ... and the daemon restarts while it is away
            port = rig.hub.push_address[1]
            await rig.start_gateway()
            rig.hub.mode = "success"
            await rig.hub.start_push_server(port=port)
            await wait_until(lambda: len(rig.hub.log.accepted) == 2, 10, "both SMS accepted")
            pushes_then = len(rig.hub.log.pushes)
            await asyncio.sleep(2.0)  # many retry intervals
            assert len(rig.hub.log.pushes) == pushes_then, "pushed again after SUCCESS"
            assert rig.hub.log.after_success == []
            assert sorted(p.text for p in rig.hub.log.accepted.values()) == ["WhatsApp code 512-907",
                                                                               "WhatsApp code 777-000"]
            first = [p for p in rig.hub.log.pushes if p.text == "WhatsApp code 512-907"]
            assert len({p.sms_id for p in first}) == 1 and len(first) >= 4  # the same smsId each time
            assert [row[2] for row in rig.pushes()] == ["delivered", "delivered"]

    run(scenario())


# --------------------------------------------------------------------------- checks 3, 4
def test_numeric_fields_and_the_country_code_in_every_number(tmp_path):
    """Checks 3 and 4: number, activationId, smsId and phone are JSON integers (never "123"),
    and number/phone carry the country code (79000000001, the SIM's +79000000001)."""
    async def scenario():
        async with HubRig(tmp_path, 3) as rig:
            services = await rig.hub.get_services()
            counts = services["countryList"][0]["operatorMap"]["simnet"]
            assert all(type(v) is int for v in counts.values()), counts
            sold = [await rig.hub.get_number("russia", "tg") for _ in range(3)]
            for reply in sold:
                assert type(reply["number"]) is int and type(reply["activationId"]) is int, reply
                assert f"+{reply['number']}" in rig.numbers() and str(reply["number"]).startswith("7")
                rig.farm.send_sms(rig.modem_of(reply["number"]), "Telegram", f"code for {reply['activationId']}")
            await wait_until(lambda: len(rig.hub.log.accepted) == 3, 10, "three pushes")
            assert rig.hub.log.violations == []  # the hub checks every push's types and headers
            for push in rig.hub.log.accepted.values():
                assert type(push.sms_id) is int and type(push.phone) is int
                assert f"+{push.phone}" in rig.numbers()
            assert {p.phone for p in rig.hub.log.accepted.values()} == {r["number"] for r in sold}

    run(scenario())


# ------------------------------------------------------------------------------- check 5
def test_get_number_answers_in_under_three_seconds_even_thirty_at_once(tmp_path):
    """Check 5 (and the hub's first test: 30 simultaneous requests with the same criteria, no
    number given twice): every GET_NUMBER answered in under 3 s."""
    async def scenario():
        async with HubRig(tmp_path, 8) as rig:
            replies = await asyncio.gather(*(rig.hub.get_number("russia", "vk", "simnet") for _ in range(30)))
            sold = [r for r in replies if r["status"] == "SUCCESS"]
            assert len(sold) == 8 and len({r["number"] for r in sold}) == 8
            assert [r for r in replies if r["status"] != "SUCCESS"] == [{"status": "NO_NUMBERS"}] * 22
            times = [seconds for action, _, seconds in rig.hub.log.calls if action == "GET_NUMBER"]
            assert len(times) == 30 and max(times) < 3.0, max(times)

    run(scenario())


# ------------------------------------------------------------------------------- check 6
def test_get_services_counts_what_a_burst_of_get_number_can_take(tmp_path):
    """Check 6 on modems: the count is exactly what a burst takes; a number leased through
    simgw.v1 is neither counted nor sold; a denied (banking) service counts 0 and gets NO_NUMBERS."""
    async def scenario():
        async with HubRig(tmp_path, 6) as rig:
            core = rig.gateway.core
            opened = await rig.gateway.call(core.open_lease, "V1", rig.numbers()[0], "vk")
            assert opened[-1].lease.state is LeaseState.WAITING
            await rig.hub.get_services()
            assert rig.hub.available("russia", "simnet", "vk") == 5
            assert rig.hub.available("russia", "simnet", "sb") == 0  # sberbank: denied
            assert (await rig.hub.get_number("russia", "sb"))["status"] == "NO_NUMBERS"
            replies = await asyncio.gather(*(rig.hub.get_number("russia", "vk", "simnet") for _ in range(9)))
            sold = {r["number"] for r in replies if r["status"] == "SUCCESS"}
            assert len(sold) == 5 and int(rig.numbers()[0].lstrip("+")) not in sold
            await rig.hub.get_services()
            assert rig.hub.available("russia", "simnet", "vk") == 0
            assert rig.hub.available("russia", "simnet", "wa") == 0  # every radio is taken
            # status 4 returns a number to the pool for that service; 1 does not
            first, second = [r for r in replies if r["status"] == "SUCCESS"][:2]
            assert (await rig.hub.finish(first["activationId"], 4))["status"] == "SUCCESS"
            assert (await rig.hub.finish(second["activationId"], 1))["status"] == "SUCCESS"
            await rig.hub.get_services()
            assert rig.hub.available("russia", "simnet", "vk") == 1
            assert rig.hub.available("russia", "simnet", "wa") == 2
            again = await rig.hub.get_number("russia", "vk")
            assert again["number"] == first["number"]

    run(scenario())


def test_a_number_cancelled_four_times_is_not_offered_for_that_service_again(tmp_path):
    """Appendix 4: after status 4 "you can give this number to us 3 more times (4 in total)"."""
    async def scenario():
        async with HubRig(tmp_path, 1) as rig:
            for _ in range(4):
                sold = await rig.hub.get_number("russia", "vk")
                assert sold["status"] == "SUCCESS"
                assert (await rig.hub.finish(sold["activationId"], 4))["status"] == "SUCCESS"
            assert (await rig.hub.get_number("russia", "vk"))["status"] == "NO_NUMBERS"
            assert (await rig.hub.get_number("russia", "wa"))["status"] == "SUCCESS"  # other services still

    run(scenario())


def test_get_services_counts_radios_not_slots_in_a_sim_bank(tmp_path):
    """Check 6 with a SIM bank (the document's warning: 512 ports and 60 modules report 60): 4
    radios behind 32 slots report 4, and a burst of GET_NUMBER takes exactly 4."""
    async def scenario():
        bank = SimBank(4, 32, time_scale=SCALE)
        hub = RefHub("http://127.0.0.1:0/", KEY)
        await hub.start_push_server()
        config = rig_config(bank, str(tmp_path))
        config = replace(config, smshub=SmshubConfig(hub.push_url, KEY, ("127.0.0.1", 0), names=Names(dict(SERVICES)),
                                                     push_retry=0.3))
        prefill_inventory(bank, config)
        await bank.start()
        gateway = Gateway(config, modem_options=BANK_OPTIONS)
        await gateway.start()
        try:
            scheduler = gateway.core.banks.schedulers["bank1"]
            await wait_until(lambda: all(scheduler._channels[c].known for c in scheduler.channels), 20, "channels")
            hub.agent_url = f"http://127.0.0.1:{gateway.hub.agent.address[1]}/"
            await hub.get_services()
            operators = hub.log.services["countryList"][0]["operatorMap"]
            assert sum(services["vk"] for services in operators.values()) == 4, operators
            replies = await asyncio.gather(*(hub.get_number("russia", "vk") for _ in range(10)))
            sold = [r for r in replies if r["status"] == "SUCCESS"]
            assert len(sold) == 4 and len({r["number"] for r in sold}) == 4, replies
            await hub.get_services()
            assert all(s["vk"] == 0 for s in hub.log.services["countryList"][0]["operatorMap"].values())
            # an SMS on a sold bank SIM reaches the hub
            slot = next(k for k, card in enumerate(bank.cards) if card and int(card.msisdn[1:]) == sold[0]["number"])
            await wait_until(lambda: gateway.core.engine.get(f"hub-{sold[0]['activationId']}").state
                             is LeaseState.WAITING, 10, "the sold SIM on air")
            bank.send_sms(slot, "VK", "VK code 4242")
            await wait_until(lambda: hub.log.accepted, 10, "the push")
            assert next(iter(hub.log.accepted.values())).phone == sold[0]["number"]
        finally:
            await gateway.stop()
            await bank.stop()
            await hub.close()

    run(scenario())


# ------------------------------------------------------------------------------- check 7
def test_exception_phone_set_is_honoured(tmp_path):
    """Check 7: no number whose prefix is in exceptionPhoneSet, prefixes as strings (SMSHub's
    example) or integers (OnlineSim's), longer than the country code."""
    async def scenario():
        async with HubRig(tmp_path, 6) as rig:
            numbers = [n.lstrip("+") for n in rig.numbers()]
            excluded = [numbers[0], numbers[1], int(numbers[2])]  # whole numbers are prefixes too
            got = []
            while True:
                reply = await rig.hub.get_number("russia", "vk", exclude=[str(excluded[0]), excluded[1], excluded[2]])
                if reply["status"] != "SUCCESS":
                    break
                got.append(str(reply["number"]))
            assert sorted(got) == sorted(numbers[3:])
            everything = await rig.hub.get_number("russia", "wa", exclude=["7900"])  # a prefix of every number
            assert everything == {"status": "NO_NUMBERS"}

    run(scenario())


@pytest.mark.slow
def test_the_activation_cap_ends_a_forgotten_activation_and_later_sms_stay_on_the_pi(tmp_path):
    """The safety net: an activation the hub never finishes ends at activation_cap (logged); an
    SMS after it is quarantined, never pushed; the hub's late FINISH_ACTIVATION still answers SUCCESS."""
    async def scenario():
        async with HubRig(tmp_path, 1, cap=600.0) as rig:
            core = rig.gateway.core
            sold = await rig.hub.get_number("russia", "vk")
            lease_id = f"hub-{sold['activationId']}"
            await rig.jump(601.0)
            await wait_until(lambda: not core.engine.get(lease_id).state.active, 5, "the cap ending it")
            rig.farm.send_sms(0, "VK", "VK code after the cap")
            await wait_until(lambda: rig.gateway.read(lambda s: s.messages(quarantined=True)), 10, "quarantined")
            await asyncio.sleep(1.0)
            assert rig.hub.log.pushes == [] and rig.pushes() == []
            assert (await rig.hub.finish(sold["activationId"], 4)) == {"status": "SUCCESS"}
            assert audit(rig, lease_id)[-2:] == ["expired", "hub.finish"]

    run(scenario())


@pytest.mark.slow
def test_the_onlinesim_flavour_bearer_key_and_no_operation_stops_the_retries(tmp_path):
    """OnlineSim's Reseller API v1: the key also as Authorization: Bearer on both sides; HTTP 200
    is success; NO_OPERATION (and BAD_SERVICE) end the retries instead of repeating every 10 s."""
    async def scenario():
        async with HubRig(tmp_path, 2, flavour=Flavour.ONLINESIM, push_retry=0.3) as rig:
            sold = await rig.hub.get_number("russia", "vk")
            assert sold["status"] == "SUCCESS"
            rig.hub.mode = "stop"
            rig.farm.send_sms(rig.modem_of(sold["number"]), "VK", "VK code no operation")
            await wait_until(lambda: rig.pushes() and rig.pushes()[0][2] == "stop", 10, "the push given up")
            await asyncio.sleep(1.5)  # several retry intervals
            assert len(rig.hub.log.pushes) == 1 and rig.hub.log.violations == []  # Bearer present, once
            rig.hub.mode = "success"
            other = await rig.hub.get_number("russia", "wa")
            rig.farm.send_sms(rig.modem_of(other["number"]), "WhatsApp", "WhatsApp code 1")
            await wait_until(lambda: len(rig.hub.log.accepted) == 1, 10, "a push accepted")
            assert rig.hub.log.violations == []

    run(scenario())


@pytest.mark.slow
def test_a_text_past_its_retention_is_never_pushed(tmp_path):
    """The push queue holds no text of its own: once message_retention purged it (the hub was
    away all along), the push is given up, never sent without (or with) its text."""
    async def scenario():
        async with HubRig(tmp_path, 1, push_retry=0.3) as rig:
            sold = await rig.hub.get_number("russia", "vk")
            await rig.hub.stop_push_server()
            port = rig.hub.push_address[1]
            rig.farm.send_sms(0, "VK", "VK code kept too long")
            await wait_until(lambda: rig.pushes(), 10, "the push queued")
            await rig.jump(8 * 86400)  # past message_retention (7 days)
            await rig.gateway.call(rig.gateway.core.purge)  # the timer loop's purge may have come first
            assert [m.text for m in rig.gateway.store_messages()] in ([None], [])
            await rig.hub.start_push_server(port=port)
            await wait_until(lambda: rig.pushes()[0][2] is not None, 10, "the push settled")
            await asyncio.sleep(1.0)
            assert rig.hub.log.pushes == [] and rig.pushes()[0][2] == "stop"
            assert (await rig.hub.finish(sold["activationId"], 3)) == {"status": "SUCCESS"}

    run(scenario())


def test_the_other_marketplace_can_neither_end_a_hub_activation_nor_block_its_ids(tmp_path):
    """One pool, two marketplaces: a simgw.v1 command naming hub-N is refused; a simgw.v1 lease
    that took the id hub-2 first does not stop the hub's GET_NUMBER (the id is skipped)."""
    async def scenario():
        async with HubRig(tmp_path, 3) as rig:
            core = rig.gateway.core
            sold = await rig.hub.get_number("russia", "vk")
            lease_id = f"hub-{sold['activationId']}"
            for action in (core.finish, core.cancel):
                refused = (await rig.gateway.call(action, lease_id))[-1]
                assert isinstance(refused, Refused) and refused.code == "held_by_hub"
            squatter = next(n for n in rig.numbers() if n != f"+{sold['number']}")
            opened = await rig.gateway.call(core.open_lease, f"hub-{sold['activationId'] + 1}", squatter, "telegram")
            assert opened[-1].lease.state is LeaseState.WAITING
            second = await rig.hub.get_number("russia", "vk")
            assert second["status"] == "SUCCESS" and second["activationId"] == sold["activationId"] + 2
            assert f"+{second['number']}" not in (squatter, f"+{sold['number']}")

    run(scenario())
