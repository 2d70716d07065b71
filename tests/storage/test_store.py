"""The card log, feedback and replay cache on SQLite and PostgreSQL, through the Store API."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, event, inspect, text

from service import store as store_module
from service.store import Store, StoreUnavailable, current_revision, head_revision

PATIENT = "Patient-MRN-0042-Testpatient"
HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"


def card(uuid: str, rule: str = "platelets-missing", indicator: str = "warning") -> dict:
    return {
        "uuid": uuid,
        "indicator": indicator,
        "source": {"topic": {"system": "urn:tdm1-cds:rule", "code": rule}},
        "suggestions": [{"uuid": f"{uuid}-s1"}],
    }


def overridden(card_uuid: str, code: str = "not-relevant", at: str = "2026-11-25T09:05:00Z") -> dict:
    return {
        "card": card_uuid,
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "urn:tdm1-cds:override-reason", "code": code}},
        "outcomeTimestamp": at,
    }


@pytest.fixture
def store(database_url: str):
    opened = Store(database_url)
    yield opened
    opened.close()


def test_schema_is_made_by_migrations_to_head(store: Store) -> None:
    assert head_revision() == "0002"
    assert current_revision(store.engine) == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert {"issued_cards", "feedback", "meta", "jwt_replay", "alembic_version"} <= tables


def test_opening_again_keeps_data_and_revision(database_url: str) -> None:
    first = Store(database_url)
    assert first.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-1")])
    first.close()
    second = Store(database_url)
    try:
        assert second.card("c-1") is not None
        assert current_revision(second.engine) == head_revision()
    finally:
        second.close()


def test_a_database_made_before_migrations_is_adopted(database_url: str) -> None:
    """Databases made by metadata.create_all (the 0001 shape, no alembic_version) upgrade in place."""
    engine = create_engine(database_url)
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as connection:
        ops = Operations(MigrationContext.configure(connection))
        import importlib

        initial = importlib.import_module("service.migrations.versions.0001_initial")
        with Operations.context(ops.migration_context):
            initial.upgrade()
        connection.execute(text("INSERT INTO meta (key, value) VALUES ('patient_hash_key', 'legacy-key')"))
    engine.dispose()
    store = Store(database_url)
    try:
        assert current_revision(store.engine) == head_revision()
        assert "jwt_replay" in inspect(store.engine).get_table_names()
        assert store.strict_hash("x") == Store(database_url).strict_hash("x")  # the old key is kept
    finally:
        store.close()


def test_issued_cards_hold_no_patient_id_or_hook_instance(store: Store, database_url: str) -> None:
    assert store.log_cards(
        "tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-1"), card("c-2")]
    )
    record = store.card("c-1")
    assert (
        record is not None
        and record.rule_id == "platelets-missing"
        and record.suggestion_uuids == ("c-1-s1",)
    )
    with store.engine.connect() as connection:
        dump = " ".join(
            str(row)
            for table in ("issued_cards", "feedback", "meta")
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )
    assert PATIENT not in dump and "0042" not in dump and HOOK_INSTANCE not in dump
    assert store.strict_hash(PATIENT) in dump  # counted by keyed hash only


def test_same_feedback_twice_is_stored_once(store: Store) -> None:
    store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-1")])
    assert store.save_feedback("tdm1-order-sign", [overridden("c-1")]) == 1
    assert store.save_feedback("tdm1-order-sign", [overridden("c-1")]) == 0
    # Repeated inside one POST too, and a different outcome is a different fact.
    assert store.save_feedback("tdm1-order-sign", [overridden("c-1", at="2026-11-25T10:00:00Z")] * 2) == 1
    assert len(store.feedback_for("c-1")) == 2
    assert all(row.known_card for row in store.feedback_for("c-1"))


def test_a_forgotten_jti_may_be_used_again_and_only_that_one(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    issuer = "https://ehr.example.org"
    assert store.remember_jti("jti-f", later, issuer=issuer) is True
    assert store.remember_jti("jti-g", later, issuer=issuer) is True
    store.forget_jti("jti-f", issuer=issuer)
    assert store.remember_jti("jti-f", later, issuer=issuer) is True
    assert store.remember_jti("jti-g", later, issuer=issuer) is False


def test_feedback_keeps_long_override_codes(store: Store) -> None:
    """Codes are the client's free choice: a long one must not be a database error (a 503 it caused)."""
    code = "x" * 600
    assert store.save_feedback("tdm1-order-sign", [overridden("c-unknown", code=code)]) == 1
    (row,) = store.feedback_for("c-unknown")
    assert row.override_code == code and row.known_card is False


def test_replay_cache(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert store.remember_jti("jti-1", later, issuer="https://ehr.example.org") is True
    assert store.remember_jti("jti-1", later, issuer="https://ehr.example.org") is False
    assert store.remember_jti("jti-1", later, issuer="https://other.example.org") is True
    # An expired entry protects nothing any more: the jti is accepted again (its token has expired).
    assert store.remember_jti("jti-2", datetime.now(UTC) - timedelta(seconds=1)) is True
    assert store.remember_jti("jti-2", later) is True
    with store.engine.connect() as connection:
        keys = " ".join(row[0] for row in connection.execute(text("SELECT key FROM jwt_replay")))
    assert "jti-1" not in keys


def test_a_second_replica_sees_the_replay(database_url: str) -> None:
    one, two = Store(database_url), Store(database_url)
    try:
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert one.remember_jti("shared", later) is True
        assert two.remember_jti("shared", later) is False
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("flaky_database", ["sqlite", "postgresql"], indirect=True)
def test_database_down_then_back(flaky_database) -> None:
    url, switch = flaky_database
    store = Store(url, retry_after_seconds=0)
    try:
        assert store.ping()
        switch.down()
        store.engine.dispose()  # the outage breaks the pooled connections too
        assert store.ping() is False
        # Cards: never an exception, kept for later; feedback: StoreUnavailable (the API's 503).
        assert (
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-down")])
            is False
        )
        assert store.backlog_size == 1
        with pytest.raises(Exception):  # noqa: B017 - StoreUnavailable or the driver's error, both 503
            store.save_feedback("tdm1-order-sign", [overridden("c-down")])
        assert len(store.keyed_hash("p")) == 64  # log lines still get a hash
        switch.up()
        assert store.ping() is True  # the readiness probe also writes what was waiting
        assert store.backlog_size == 0
        assert store.card("c-down") is not None
        assert store.save_feedback("tdm1-order-sign", [overridden("c-down")]) == 1
    finally:
        store.close()


@pytest.mark.parametrize("flaky_database", ["sqlite", "postgresql"], indirect=True)
def test_database_down_at_start(flaky_database) -> None:
    url, switch = flaky_database
    switch.down()
    store = Store(url, retry_after_seconds=0)  # the service starts; readiness says not ready
    try:
        assert store.ping() is False
        assert (
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-early")])
            is False
        )
        with pytest.raises(StoreUnavailable):
            store.remember_jti("j", datetime.now(UTC) + timedelta(minutes=1))
        switch.up()
        assert (
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-late")]) is True
        )
        assert store.card("c-early") is not None and store.card("c-late") is not None
        assert current_revision(store.engine) == head_revision()
    finally:
        store.close()


def _queue_card_writes(store: Store, count: int) -> tuple[list[threading.Thread], list[bool]]:
    """`count` concurrent hook calls logging one card each, started while a write is under way."""
    answers: list[bool] = []

    def call(n: int) -> None:
        answers.append(
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, f"hook-{n}", [card(f"g-{n}")])
        )

    threads = [threading.Thread(target=call, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for _ in range(500):  # bounded: each call appends to the backlog, then waits for the writer
        if store.backlog_size == count:
            break
        threading.Event().wait(0.01)
    assert store.backlog_size == count
    return threads, answers


def test_concurrent_calls_share_one_card_log_transaction(store: Store) -> None:
    store.strict_hash("x")  # the hash key is made (and committed) on first use: not a card write
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _connection: commits.append(1))
    with store._flush_lock:  # a write is under way: the calls queue behind it
        threads, answers = _queue_card_writes(store, 8)
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [True] * 8  # each call answered only once its card was written
    assert len(commits) == 1  # the first to get the writer's turn wrote all eight
    assert store.backlog_size == 0
    assert all(store.card(f"g-{n}") is not None for n in range(8))


def test_calls_waiting_on_a_failed_card_log_write_keep_their_cards_for_later(flaky_database) -> None:
    url, switch = flaky_database
    store = Store(url, retry_after_seconds=60)
    try:
        assert store.ping()
        switch.down()
        store.engine.dispose()
        with store._flush_lock:
            threads, answers = _queue_card_writes(store, 4)
        for thread in threads:
            thread.join(timeout=30)
        # One call tried and failed; the others did not queue up retries against a dead database.
        assert answers == [False] * 4
        assert store.backlog_size == 4
        switch.up()
        assert store.ping() is True
        assert all(store.card(f"g-{n}") is not None for n in range(4))
    finally:
        store.close()


def test_backlog_is_bounded_and_counts_what_it_drops(tmp_path) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") or 0.0
    store = Store(f"sqlite:///{tmp_path}/missing/cards.sqlite3", backlog_limit=2)
    try:
        for n in range(4):
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card(f"c-{n}")])
        assert store.backlog_size == 2
        assert REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") == before + 2
    finally:
        store.close()


@pytest.mark.parametrize("flaky_database", ["sqlite", "postgresql"], indirect=True)
def test_a_stopping_process_writes_its_waiting_cards_or_counts_them_dropped(flaky_database) -> None:
    from prometheus_client import REGISTRY

    url, switch = flaky_database
    store = Store(url, retry_after_seconds=60)
    try:
        assert store.ping()
        switch.down()
        store.engine.dispose()
        for name in ("c-a", "c-b"):
            store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card(name)])
        switch.up()
        assert store.drain() == 0  # back: written now, though the retry pause has not passed
        assert store.backlog_size == 0 and store.card("c-a") is not None and store.card("c-b") is not None

        switch.down()
        store.engine.dispose()
        store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-lost")])
        before = REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") or 0.0
        assert store.drain() == 1  # still down: lost with the process, but counted
        assert store.backlog_size == 0
        assert REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") == before + 1
        switch.up()
    finally:
        store.close()


def test_unusable_database_url_is_a_settings_error() -> None:
    from service.settings import SettingsError

    with pytest.raises(SettingsError):
        Store("mysql://db.example.org/cards")
    with pytest.raises(SettingsError):
        Store("not a url")


def test_migrate_command(database_url: str, monkeypatch, capsys) -> None:
    from service.cli import main

    monkeypatch.setenv("TDM1_CDS_DATABASE_URL", database_url)
    assert main(["migrate"]) == 0
    assert "revision 0002" in capsys.readouterr().out
    assert main(["migrate"]) == 0  # idempotent


def test_migrate_command_database_down(monkeypatch, capsys, tmp_path) -> None:
    from service.cli import main

    url = f"postgresql+psycopg://tdm1:secret-pw@127.0.0.1:{_closed_port()}/none"
    monkeypatch.setenv("TDM1_CDS_DATABASE_URL", url)
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert "unavailable" in err and "secret-pw" not in err


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


assert store_module.MIGRATIONS.is_dir()


def test_migrations_and_models_agree(store: Store) -> None:
    """The models are what the code queries; the migrations are what production has. No drift."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.store import Base

    with store.engine.connect() as connection:
        # Types on PostgreSQL only: SQLite does not enforce them, so 0002 leaves its columns be.
        compare_type = connection.dialect.name == "postgresql"
        context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
        differences = [
            d
            for d in compare_metadata(context, Base.metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table")
        ]
    assert differences == []


def test_replicas_opening_a_new_database_together_migrate_once(database_url: str) -> None:
    """Pods (or gunicorn masters) starting at once: one migrates, the others wait and find it done."""
    import threading

    barrier = threading.Barrier(4)
    ready: list[bool] = []

    def open_one() -> None:
        barrier.wait()
        opened = Store(database_url)
        ready.append(opened.ping())
        opened.close()

    threads = [threading.Thread(target=open_one, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)  # a bound so a deadlock fails the test instead of hanging CI
    assert not any(thread.is_alive() for thread in threads)
    assert ready == [True] * 4
    engine = create_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_database_errors_are_logged_without_the_url_or_ids(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+psycopg://tdm1:pw-s3cr3t@127.0.0.1:{_closed_port()}/cards"
    with caplog.at_level("INFO", logger="tdm1_cds"):
        store = Store(url, retry_after_seconds=0)
        store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-1")])
        store.ping()
        store.close()
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "card log write failed" in logged
    assert "pw-s3cr3t" not in logged and PATIENT not in logged and HOOK_INSTANCE not in logged


def test_a_stopping_process_waits_for_a_hung_database_only_so_long(tmp_path) -> None:
    """drain had no bound: a database that hangs held the worker until gunicorn killed it, and the
    cards it could not write went uncounted. It now waits `timeout`, then counts them dropped."""
    from prometheus_client import REGISTRY

    store = Store(f"sqlite:///{tmp_path}/hung.sqlite3", retry_after_seconds=60)
    release = threading.Event()
    try:
        store._write_batch = lambda batch: False  # the database is down: the cards wait
        store.log_cards("tdm1-order-sign", "order-sign", PATIENT, HOOK_INSTANCE, [card("c-hung")])
        assert store.backlog_size == 1

        def hangs(batch):
            release.wait(30)
            return False

        store._write_batch = hangs  # and now it hangs instead of answering
        before = REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") or 0.0
        started = time.monotonic()
        assert store.drain(timeout=0.3) == 1
        assert time.monotonic() - started < 5
        assert REGISTRY.get_sample_value("tdm1_cds_card_log_dropped_total") == before + 1
    finally:
        release.set()
        store.close()
