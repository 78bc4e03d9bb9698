"""The lease engine: a table test per rule and refusal, at the boundaries, and a stateful property
test over random command sequences that proves the invariants."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.domain.leases import (
    TRANSITIONS,
    Deliver,
    LeaseEngine,
    LeaseState,
    Opened,
    Policy,
    Quarantine,
    Refusal,
    Refused,
    Transitioned,
    Trigger,
)

MIN = 60.0
NUMBER = "+79000000001"


def engine(**policy) -> LeaseEngine:
    e = LeaseEngine(Policy(**policy))
    for n in range(1, 4):
        e.set_online(f"+7900000000{n}", True)
    return e


def opened(e: LeaseEngine, lease_id: str = "L1", number: str = NUMBER, service: str = "telegram", now: float = 0.0,
           **kw) -> None:
    decisions = e.open(lease_id, number, service, now, **kw)
    assert isinstance(decisions[-1], Opened), decisions


def refusal(decisions) -> str | None:
    last = decisions[-1]
    return last.code if isinstance(last, Refused) else None


def test_transition_table_has_no_exit_from_terminal_states():
    for (state, _), _ in TRANSITIONS.items():
        assert state.active


# --------------------------------------------------------------------------------------- windows
def test_sms_one_millisecond_before_the_wait_window_ends_is_delivered():
    e = engine()
    opened(e)
    decisions = e.sms_arrived("s1", NUMBER, 20 * MIN - 0.001)
    assert isinstance(decisions[-1], Deliver) and decisions[-1].lease.id == "L1"


def test_sms_at_and_after_the_wait_window_end_is_quarantined_and_the_lease_expired():
    for at in (20 * MIN, 20 * MIN + 0.001):
        e = engine()
        opened(e)
        decisions = e.sms_arrived("s1", NUMBER, at)
        assert isinstance(decisions[0], Transitioned) and decisions[0].lease.state is LeaseState.EXPIRED
        assert decisions[0].at == 20 * MIN
        assert isinstance(decisions[-1], Quarantine)


def test_auto_finish_15_minutes_after_the_last_sms_boundaries():
    e = engine()
    opened(e)
    e.sms_arrived("s1", NUMBER, 5 * MIN)
    assert isinstance(e.sms_arrived("s2", NUMBER, 20 * MIN - 0.001)[-1], Deliver)  # timer restarts at s2
    assert e.tick(35 * MIN - 0.002) == []
    ended = e.tick(35 * MIN)
    assert ended[0].lease.state is LeaseState.FINISHED and ended[0].trigger is Trigger.DEADLINE


def test_repeat_gives_a_new_wait_window_and_an_empty_repeat_finishes():
    e = engine()
    opened(e)
    e.sms_arrived("s1", NUMBER, 1 * MIN)
    (t,) = e.repeat("L1", 2 * MIN)
    assert t.lease.state is LeaseState.REPEAT_WAITING and t.lease.deadline == 22 * MIN
    assert isinstance(e.sms_arrived("s2", NUMBER, 22 * MIN - 0.001)[-1], Deliver)
    e2 = engine()
    opened(e2)
    e2.sms_arrived("s1", NUMBER, 1 * MIN)
    e2.repeat("L1", 2 * MIN)
    (end,) = e2.tick(22 * MIN)
    assert end.lease.state is LeaseState.FINISHED


def test_custom_window_within_policy():
    e = engine()
    opened(e, wait_window=5 * MIN)
    assert e.get("L1").deadline == 5 * MIN
    assert refusal(e.open("L2", "+79000000002", "x", 0, wait_window=21 * MIN)) == "window_out_of_policy"
    assert refusal(e.open("L3", "+79000000002", "x", 0, wait_window=10.0)) == "window_out_of_policy"


# -------------------------------------------------------------------------------------- refusals
def test_number_busy():
    e = engine()
    opened(e)
    assert refusal(e.open("L2", NUMBER, "whatsapp", 1.0)) == Refusal.NUMBER_BUSY.code


@pytest.mark.parametrize("service,category", [("webmoney", None), ("WebMoney", None), ("sberbank", "banking"),
                                              ("tinkoff", "Banking"), ("wm", "webmoney")])
def test_service_denied_by_default(service, category):
    assert refusal(engine().open("L1", NUMBER, service, 0, category=category)) == "service_denied"


def test_supplier_adds_to_the_deny_list():
    e = engine(denied_services=frozenset({"webmoney", "tinder"}))
    assert refusal(e.open("L1", NUMBER, "Tinder", 0)) == "service_denied"


def test_number_offline():
    assert refusal(engine().open("L1", "+79999999999", "telegram", 0)) == "number_offline"


def test_number_used_for_service_forever_by_default_but_other_services_fine():
    e = engine()
    opened(e)
    e.sms_arrived("s1", NUMBER, 1 * MIN)
    e.finish("L1", 2 * MIN)
    assert refusal(e.open("L2", NUMBER, "Telegram", 10_000 * MIN)) == "number_used_for_service"
    opened(e, "L3", service="whatsapp", now=10_000 * MIN)


def test_number_reusable_after_the_cooldown():
    e = engine(reuse_cooldown=7 * 24 * 3600.0)
    opened(e)
    e.sms_arrived("s1", NUMBER, 0)
    e.finish("L1", 1)
    assert refusal(e.open("L2", NUMBER, "telegram", 1 + 7 * 24 * 3600.0 - 0.001)) == "number_used_for_service"
    opened(e, "L3", now=1 + 7 * 24 * 3600.0)


def test_an_expired_or_cancelled_lease_does_not_use_up_the_number():
    e = engine()
    opened(e)
    e.tick(20 * MIN)
    opened(e, "L2", now=20 * MIN)
    e.cancel("L2", 21 * MIN)
    opened(e, "L3", now=22 * MIN)


def test_not_cancellable_after_sms():
    e = engine()
    opened(e)
    e.sms_arrived("s1", NUMBER, 1.0)
    assert refusal(e.cancel("L1", 2.0)) == "not_cancellable"


def test_cancel_any_time_before_sms():
    e = engine()
    opened(e)
    (t,) = e.cancel("L1", 20 * MIN - 0.001)
    assert t.lease.state is LeaseState.CANCELLED and t.lease.sms_count == 0


def test_not_finishable_before_sms_and_not_repeatable_twice():
    e = engine()
    opened(e)
    assert refusal(e.finish("L1", 1.0)) == "not_finishable"
    assert refusal(e.repeat("L1", 1.0)) == "not_repeatable"
    e.sms_arrived("s1", NUMBER, 2.0)
    e.repeat("L1", 3.0)
    assert refusal(e.repeat("L1", 4.0)) == "not_repeatable"


def test_unknown_and_ended_leases():
    e = engine()
    assert refusal(e.finish("nope", 0)) == "unknown_lease"
    opened(e)
    e.cancel("L1", 1.0)
    for command in (e.cancel, e.finish, e.repeat):
        assert refusal(command("L1", 2.0)) == "lease_ended"
    assert refusal(e.open("L1", NUMBER, "telegram", 3.0)) == "duplicate_lease"


def test_quarantine_when_no_lease():
    decisions = engine().sms_arrived("s1", NUMBER, 0)
    assert decisions == [Quarantine("s1", NUMBER, "no active lease on the number")]


def test_every_refusal_has_a_code_and_a_sentence():
    codes = [r.code for r in Refusal]
    assert len(set(codes)) == len(codes)
    assert all(r.sentence and r.sentence[0].islower() for r in Refusal)


# -------------------------------------------------------------------------------- property test
NUMBERS = [f"+7900000000{n}" for n in range(1, 4)]
SERVICES = ["telegram", "whatsapp", "webmoney"]


class LeaseMachine(RuleBasedStateMachine):
    """Random open/repeat/finish/cancel/sms/tick sequences with random times."""

    def __init__(self) -> None:
        super().__init__()
        self.policy = Policy()
        self.engine = LeaseEngine(self.policy)
        for n in NUMBERS:
            self.engine.set_online(n, True)
        self.now = 0.0
        self.next_id = 0
        self.lease_ids: list[str] = []
        self.sms_fate: dict[str, list[str]] = {}  # sms id -> lease ids it was delivered to, or ["Q"]
        self.deliveries: list[tuple[str, str, float]] = []  # (lease, sms, at)
        self.history: dict[str, list[tuple[float, LeaseState]]] = {}
        self.sms_seq = 0

    def _record(self, decisions) -> None:
        for d in decisions:
            if isinstance(d, Opened):
                self.history.setdefault(d.lease.id, []).append((d.lease.opened_at, d.lease.state))
                assert d.lease.deadline - d.lease.opened_at <= self.policy.max_wait_window + 1e-6
            elif isinstance(d, Transitioned):
                self.history.setdefault(d.lease.id, []).append((d.at, d.lease.state))
                if d.lease.state.active:
                    bound = max(self.policy.max_wait_window, self.policy.finish_after)
                    assert d.lease.deadline - d.at <= bound + 1e-6
            elif isinstance(d, Deliver):
                self.sms_fate.setdefault(d.sms_id, []).append(d.lease.id)
                self.deliveries.append((d.lease.id, d.sms_id, self.now))
            elif isinstance(d, Quarantine):
                self.sms_fate.setdefault(d.sms_id, []).append("Q")

    @rule(dt=st.floats(0, 30 * 60.0))
    def advance(self, dt):
        self.now += dt
        self._record(self.engine.tick(self.now))

    @rule(number=st.sampled_from(NUMBERS), service=st.sampled_from(SERVICES),
          window=st.one_of(st.none(), st.floats(30.0, 25 * 60.0)))
    def open(self, number, service, window):
        self.next_id += 1
        lease_id = f"L{self.next_id}"
        self.lease_ids.append(lease_id)
        self._record(self.engine.open(lease_id, number, service, self.now, wait_window=window))

    @rule(data=st.data(), command=st.sampled_from(["repeat", "finish", "cancel"]))
    def command(self, data, command):
        if not self.lease_ids:
            return
        lease_id = data.draw(st.sampled_from(self.lease_ids))
        self._record(getattr(self.engine, command)(lease_id, self.now))

    @rule(number=st.sampled_from(NUMBERS))
    def sms(self, number):
        self.sms_seq += 1
        sms_id = f"s{self.sms_seq}"
        self._record(self.engine.sms_arrived(sms_id, number, self.now))

    @invariant()
    def never_two_active_leases_on_one_number(self):
        numbers = [lease.number for lease in self.engine.active()]
        assert len(numbers) == len(set(numbers))

    @invariant()
    def every_sms_delivered_exactly_once_or_quarantined(self):
        for fate in self.sms_fate.values():
            assert len(fate) == 1

    @invariant()
    def cancelled_leases_never_had_an_sms(self):
        for lease_id in self.lease_ids:
            lease = self.engine.get(lease_id)
            if lease is not None and lease.state is LeaseState.CANCELLED:
                assert lease.sms_count == 0
                assert all(d[0] != lease_id for d in self.deliveries)

    @invariant()
    def no_sms_delivered_outside_its_lease(self):
        for lease_id, _, at in self.deliveries:
            lease = self.engine.get(lease_id)
            assert lease is not None
            assert lease.opened_at <= at
            if lease.ended_at is not None:
                assert at < lease.ended_at or (lease.state is LeaseState.FINISHED and at <= lease.ended_at)

    @invariant()
    def deadlines_within_policy(self):
        for lease in self.engine.active():
            assert lease.deadline > self.now  # ticked: nothing overdue stays active
            assert lease.deadline - self.now <= max(self.policy.max_wait_window, self.policy.finish_after) + 1e-6

    @invariant()
    def denied_services_never_leased(self):
        assert all(lease.service != "webmoney" for lease in self.engine.active())


TestLeaseMachine = LeaseMachine.TestCase
TestLeaseMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestLeaseMachine.pytestmark = [pytest.mark.slow]  # 300 random walks: 2-4 s of CPU


# ------------------------------------------------------------------- flat cost over uptime
def _activate(e: LeaseEngine, n: int, now: float, service: str) -> None:
    """Lease ``NUMBER`` for ``service``, one SMS, finish: one activation and one ended lease."""
    opened(e, f"L{n}", service=service, now=now)
    e.sms_arrived(f"s{n}", NUMBER, now + 1)
    e.finish(f"L{n}", now + 2)


def test_the_snapshot_taken_per_transaction_does_not_grow_with_ended_leases_and_activations():
    """Fails before this change: snapshot() copied every remembered ended lease (up to 10,000) and
    the whole activation history on every core transaction. 20,000 leases later, what a snapshot
    holds is what it held after 100; and a rollback still undoes the last transaction exactly."""
    import pickle

    e = engine()
    sizes = []
    for n in range(20_000):
        e.snapshot()  # as the core does before each transaction
        _activate(e, n, n * 10.0, f"svc{n}")
        if n in (100, 19_999):
            sizes.append(len(pickle.dumps(e.snapshot())))
    assert sizes[1] <= sizes[0] + 16, sizes  # (the journal marks count up)
    before = e.snapshot()
    _activate(e, 20_000, 300_000.0, "svc-last")
    e.rollback(before)
    assert e.get("L20000") is None and not e.used_for(NUMBER, "svc-last", 300_010.0)
    assert e.used_for(NUMBER, "svc19999", 300_010.0) and e.get("L19999").state is LeaseState.FINISHED
    assert e.get("L0") is None and len(e._ended) == e.max_remembered_ended  # the oldest forgotten first


def test_with_a_cooldown_the_activation_history_holds_only_what_the_cooldown_covers():
    e = engine(reuse_cooldown=3600.0)
    for n in range(5_000):  # one activation a minute for 3.5 days, each for a new service
        _activate(e, n, n * 60.0, f"svc{n}")
    assert len(e._activated) <= 62  # the last hour's (60), give or take one prune step
    assert e.used_for(NUMBER, "svc4999", 4_999 * 60.0 + 10) and not e.used_for(NUMBER, "svc0", 4_999 * 60.0)


def test_at_capacity_the_oldest_activation_leaves_memory_and_the_store_answers_for_it():
    """Never re-leased (no cool-down): the history is needed for ever, so what leaves memory at the
    cap is asked of the lookup (the store, in the daemon; a dict here)."""
    from gateway.domain.activations import ActivationHistory

    stored: dict[tuple[str, str], float] = {}
    history = ActivationHistory(lookup=lambda number, service: stored.get((number, service)), capacity=100)
    e = engine()
    e.use_activation_history(history)
    for n in range(1_000):
        _activate(e, n, n * 10.0, f"SVC{n}")
        stored[(NUMBER, f"svc{n}")] = n * 10.0 + 2  # the store committed it with the decision
    assert len(history) == 100 and history.dropped_for_capacity
    assert refusal(e.open("again", NUMBER, "svc3", 20_000.0)) == "number_used_for_service"  # from the store
    assert refusal(e.open("again", NUMBER, "svc999", 20_000.0)) == "number_used_for_service"  # from memory
    opened(e, "new", service="never-used", now=20_000.0)
    no_lookup = ActivationHistory(capacity=10)
    for n in range(50):
        no_lookup.record(NUMBER, f"svc{n}", float(n))
    assert len(no_lookup) == 50  # nothing to answer for a dropped entry: nothing dropped
