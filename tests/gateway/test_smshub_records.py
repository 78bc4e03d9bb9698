"""The hub's tables on a real SQLite file: the push queue's order, results, caps and purges."""

from __future__ import annotations

from gateway.smshub import records
from gateway.store import MessageRow, Store


def message(store: Store, msg_id: str, text: str | None, at: float) -> None:
    store.insert_message(MessageRow(msg_id, "8970100000000000001", "+79000000001", "/dev/x", "VK", text, "gsm7", 1,
                                    True, None, at, "hub-1", False, None), [])


def test_the_push_queue_is_durable_ordered_and_capped(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "simgw.db"))
    store.open()
    with store.transaction() as db:
        assert records.next_activation_id(db) == 1
        records.add_activation(db, 1, "+79000000001", "vk", "vk", 100.0)
        for k in range(5):
            message(store, f"m{k}", f"code {k}", 100.0 + k)
            assert records.queue_push(db, f"m{k}", 1, "+79000000001", 100.0 + k) == k + 1
        assert records.queue_push(db, "m0", 1, "+79000000001", 200.0) == 0  # queued once, whatever happens
    store.close()
    store.open()  # a restart: everything still there, in order
    db = store.db
    due = records.due_pushes(db, 102.0, 10)
    assert [p.sms_id for p in due] == [1, 2, 3] and due[0].text == "code 0" and due[0].sender == "VK"
    assert [p.sms_id for p in records.due_pushes(db, 102.0, 10, skip=(1,))] == [2, 3]
    with store.transaction() as db:
        records.push_done(db, 1, "delivered", 103.0)
        records.push_again(db, 2, 113.0)
        records.push_done(db, 2, "delivered", 104.0)
        records.push_again(db, 2, 500.0)  # a late retry of a delivered push changes nothing
    assert records.pushes(store.db)[:2] == [(1, "m0", "delivered", 1), (2, "m1", "delivered", 2)]
    assert records.next_push_at(store.db) == 102.0
    with store.transaction() as db:
        db.execute("UPDATE messages SET text = NULL WHERE id = 'm2'")  # the retention purge took its text
        monkeypatch.setattr(records, "MAX_PENDING_PUSHES", 1)
        counts = records.purge(db, 1000.0, claim_window=10_000.0)
    assert counts["pushes_purged"] == 1 and counts["pushes_over_cap"] == 1  # m2 purged; m3 over the cap of 1
    assert [row[2] for row in records.pushes(store.db)] == ["delivered", "delivered", "purged", "over_cap", None]
    with store.transaction() as db:
        counts = records.purge(db, 20_000.0, claim_window=10_000.0)
    assert counts["pushes_forgotten"] == 4 and [row[1] for row in records.pushes(store.db)] == ["m4"]
    store.close()


def test_activation_ids_are_never_reused_and_a_taken_id_is_skipped(tmp_path):
    store = Store(str(tmp_path / "simgw.db"))
    store.open()
    with store.transaction() as db:
        records.skip_activation_id(db, 1)  # a simgw.v1 lease is called hub-1
        assert records.next_activation_id(db) == 2
        records.add_activation(db, 2, "+79000000001", "vk", "vk", 1.0)
        records.finish_activation(db, 2, 3, 2.0)
        records.finish_activation(db, 2, 4, 3.0)  # the first status stays
        assert records.activation(db, 2).status == 3 and records.activation_of_lease(db, "hub-2").id == 2
        records.purge(db, 10_000.0, claim_window=100.0)
        assert records.activation(db, 2) is None and records.next_activation_id(db) == 3
        assert [records.count_cancel(db, "+79000000001", "VK") for _ in range(3)] == [1, 2, 3]
    store.close()


def test_migration_5_keeps_a_version_4_databases_leases_as_they_were(tmp_path, monkeypatch):
    import gateway.store.connection as store_module  # where the migrations are run from
    from gateway.domain.leases import LeaseState
    from gateway.store import MIGRATIONS, StoredLease

    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:4])  # a database as version 4 left it
    store = Store(str(tmp_path / "simgw.db"))
    store.open()
    with store.transaction() as db:
        db.execute("INSERT INTO leases (id, number, service, state, opened_at, deadline, wait_window, sms_count)"
                   " VALUES ('L1', '+79000000001', 'vk', 'waiting', 1.0, 1201.0, 1200.0, 0)")
    store.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    store.open()
    assert store.schema_version() == len(MIGRATIONS) == 5
    (lease,) = store.leases()
    assert lease == StoredLease("L1", "+79000000001", "vk", None, LeaseState.WAITING, 1.0, 1201.0, 1200.0, 0, None,
                                None, None, None, False)
    assert records.next_activation_id(store.db) == 1
    store.close()
