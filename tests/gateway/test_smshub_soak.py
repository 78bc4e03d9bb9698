"""Issue 14, must-show 2: both marketplaces at once on 8 simulated modems, for a bounded soak
with hub restarts, non-SUCCESS replies, marketplace drops and daemon SIGKILLs. The time is
SIMGW_HUB_SOAK_SECONDS (default 30)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.gateway.smshub_soak import HubSoak


@pytest.mark.slow
def test_both_marketplaces_at_once_through_faults(tmp_path):
    seconds = float(os.environ.get("SIMGW_HUB_SOAK_SECONDS", "30"))
    verdict = asyncio.run(asyncio.wait_for(HubSoak(str(tmp_path), modems=8, seconds=seconds).run(), seconds + 180))
    print("hub soak:", json.dumps(verdict))
    assert verdict["hub_leases"] > 5 and verdict["market_leases"] > 5 and sum(verdict["faults"].values()) >= 3
    assert verdict["hub_sms"] > 5 and verdict["accepted"] == verdict["hub_sms"]
    for problem in ("overlapping_leases", "never_pushed", "pushed_after_success", "pushed_but_not_a_hub_lease_sms",
                    "pushed_to_the_wrong_number", "hub_sms_at_the_market", "violations"):
        assert verdict[problem] == [], (problem, verdict[problem])
