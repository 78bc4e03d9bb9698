"""The modem driver against simulated modems on real ptys: init per vendor, the receive contract,
the quirks the established daemons trip over."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from drivers.modem import ModemState, ReceiveMode
from drivers.simulator.profiles import MIXED_ORDER
from tests.conftest import FAST, Harness, run, wait_until


def test_every_vendor_initialises_and_identifies():
    async def scenario():
        async with Harness(len(MIXED_ORDER)) as h:
            for sim, modem in zip(h.farm.info(), h.modems):
                assert modem.profile.name == sim.profile, sim.port
                assert modem.identity.iccid == sim.iccid, sim.profile  # each vendor's own ICCID command
                assert modem.identity.imsi == sim.imsi and modem.identity.msisdn == sim.msisdn
                assert modem.health.state is ModemState.OK
                assert modem.health.signal_dbm == -71 and modem.health.operator == "SimNet"

    run(scenario())


def test_rejected_cnmi_form_falls_back_to_the_next():
    async def scenario():
        async with Harness(1, profile="simcom") as h:
            # the simulated SIM800 rejects 2,1,0,2,0 and 2,1,0,2; the driver moves on, as smstools does
            assert h.modems[0].health.cnmi == "2,1,0,0,0"
            h.farm.send_sms(0, "+79160000001", "after fallback")
            await h.expect([(0, "after fallback")])

    run(scenario())


def test_startup_sweep_reads_what_was_stored_while_nobody_listened():
    async def scenario():
        h = Harness(2)
        await h.farm.start()
        texts = [f"stored before start {i}" for i in range(5)]
        for i, text in enumerate(texts):
            h.farm.modems[i % 2].engine.fill_storage(h.farm.pdus_for("+79160000002", text))
        await h.__aenter__()
        try:
            await h.expect([(i % 2, t) for i, t in enumerate(texts)])
            await wait_until(lambda: h.farm.stored_count() == 0, 5, "SIM storage to empty")
        finally:
            await h.__aexit__()

    run(scenario())


@pytest.mark.slow
def test_message_is_deleted_only_after_the_sink_confirms():
    failures = {"left": 2}

    async def flaky(part):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError("disk full")  # the store refuses: the SMS must stay on the SIM

    async def scenario():
        async with Harness(1, sink_hook=flaky) as h:
            h.farm.send_sms(0, "+79160000003", "keep me until stored")
            await wait_until(lambda: h.modems[0].health.sink_failures >= 1, 5, "a sink failure")
            assert len(h.farm.modems[0].engine.storage) == 1  # still on the SIM
            await h.expect([(0, "keep me until stored")], timeout=10)  # a later sweep offers it again
            await wait_until(lambda: h.farm.stored_count() == 0, 5, "deletion after success")

    run(scenario())


def test_announced_but_momentarily_empty_index_is_read_later():
    async def scenario():
        async with Harness(1, profile="quectel") as h:
            h.farm.send_sms(0, "+79160000004", "quectel announces early")
            await h.expect([(0, "quectel announces early")])

    run(scenario())


def test_index_that_vanished_is_not_fatal_and_nothing_is_lost():
    async def scenario():
        async with Harness(1, profile="generic") as h:
            engine = h.farm.modems[0].engine
            pdu = h.farm.pdus_for("+79160000005", "moved elsewhere")[0]
            engine.storage[7] = (0, pdu)
            h.farm.modems[0].engine._urc('+CMTI: "SM",3')  # announces an index that holds nothing: 321
            h.farm.modems[0].flush()
            await h.expect([(0, "moved elsewhere")])  # the sweep after 321 finds the real one
            assert h.modems[0].health.state is ModemState.OK

    run(scenario())


def test_huawei_rssi_before_every_cmgr_answer():
    async def scenario():
        async with Harness(1, profile="huawei", periodic_interval=0.05) as h:
            texts = [f"huawei {i}" for i in range(20)]
            for text in texts:
                h.farm.send_sms(0, "+79160000006", text)
                await asyncio.sleep(0.01)
            await h.expect([(0, t) for t in texts])

    run(scenario())


def test_command_not_support_is_an_error_not_a_hang():
    async def scenario():
        async with Harness(1, profile="huawei") as h:
            response = await h.modems[0].channel.command("AT+MODE=2", check=False)
            assert response.result.text == "COMMAND NOT SUPPORT" and not response.result.ok

    run(scenario())


def test_storage_the_modem_refuses_falls_back():
    async def scenario():
        async with Harness(1, profile="sierra") as h:
            h.modems[0].profile = dataclasses.replace(h.modems[0].profile, storages=("MT", "SM"))
            await h.modems[0]._choose_storage()  # MT refused by this firmware: SM is used
            assert h.modems[0].health.storage == "SM"

    run(scenario())


def test_direct_delivery_with_cnma():
    async def scenario():
        options = dataclasses.replace(FAST, receive_mode=ReceiveMode.DIRECT)
        async with Harness(1, profile="generic", options=options) as h:
            assert h.modems[0].health.cnmi.startswith("2,2")
            h.farm.send_sms(0, "+79160000007", "direct to the gateway")
            await h.expect([(0, "direct to the gateway")])
            await wait_until(lambda: h.farm.modems[0].engine._unacked_cmt == 0, 5, "+CNMA")

    run(scenario())


@pytest.mark.slow
def test_malformed_pdu_on_the_sim_reaches_the_sink_as_an_error_and_is_not_stuck():
    async def scenario():
        async with Harness(1, profile="generic") as h:
            h.farm.modems[0].engine.storage[2] = (0, "07919761989901F0040B91")  # truncated
            h.farm.send_sms(0, "+79160000008", "good one after a bad one")
            await h.expect([(0, "good one after a bad one")])
            await wait_until(lambda: len(h.bad_parts) == 1, 5, "the malformed PDU to be reported")
            assert "truncated" in h.bad_parts[0].error
            await wait_until(lambda: h.farm.stored_count() == 0, 5, "storage to empty")

    run(scenario())


@pytest.mark.parametrize("profile", MIXED_ORDER)
def test_multipart_shuffled_every_vendor(profile):
    async def scenario():
        async with Harness(1, profile=profile) as h:
            text = "Многочастное сообщение с кодом 123-456 и эмодзи 😀. " * 4
            h.farm.send_sms(0, "Telegram", text, shuffle=True)
            await h.expect([(0, text)])

    run(scenario())


def test_ussd_answer_and_a_refused_ussd_request():
    """The operator's answer comes as +CUSD after OK; a modem that refuses the request (here its SIM
    was pulled: +CME ERROR) means 'no answer', not an exception that would end a scan or a switch."""

    async def scenario():
        async with Harness(1, profile="quectel", periodic_interval=None) as h:
            h.farm.modems[0].engine.sim.ussd_number_reply = "Vash nomer {msisdn}"
            assert await h.modems[0].ussd("*111*0887#", timeout=2.0) == f"Vash nomer {h.farm.info()[0].msisdn}"
            h.farm.inject_fault(0, "pull_sim")
            assert await h.modems[0].ussd("*111*0887#", timeout=2.0) is None

    run(scenario(), 30)
