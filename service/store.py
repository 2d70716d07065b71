"""The issued-card log, clinicians' feedback and the JWT replay cache, behind SQLAlchemy 2.

SQLite (a file) is the embedded default; PostgreSQL is for production, by TDM1_CDS_DATABASE_URL.
The schema is Alembic's (service/migrations): `Store` upgrades to head when it opens, under a
PostgreSQL advisory lock so replicas starting together do not race, and `tdm1-cds migrate` does
the same on demand.

Nothing here identifies a person: a keyed hash (HMAC-SHA256) of the patient id is enough to count
cards per patient, the hookInstance is hashed too, a feedback's free-text comment is not kept (it
may name the patient), only whether there was one, and a JWT's jti is kept as a plain hash.

A database that is down must not break hook calls: issued cards that cannot be written wait in a
bounded in-process backlog and are written with the next successful write (or readiness probe,
or as the worker stops: Store.drain); feedback answers 503 so the EHR retries, and repeats are
stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    inspect,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service import metrics
from service.settings import SettingsError

log = logging.getLogger("tdm1_cds.store")
# How long a stopping worker waits for its last card-log write (drain): well inside gunicorn's
# graceful_timeout (20 s), so the worker can still count what it could not write.
DRAIN_SECONDS = 5.0
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant will do: it only has to be the same for every replica.
_MIGRATION_LOCK_ID = 0x7D41C05


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or is not at the expected schema; the caller answers 503."""


class StoreConfigError(SettingsError):
    """TDM1_CDS_DATABASE_URL is not a database URL this service can use."""


class Base(DeclarativeBase):
    pass


class IssuedCard(Base):
    __tablename__ = "issued_cards"

    uuid: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(64), index=True)
    hook: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    indicator: Mapped[str] = mapped_column(String(16))
    patient_hash: Mapped[str] = mapped_column(String(64), index=True)
    hook_instance_hash: Mapped[str] = mapped_column(String(64))
    suggestion_uuids: Mapped[str] = mapped_column(Text, default="[]")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(64))
    card_uuid: Mapped[str] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[str] = mapped_column(Text, default="[]")
    override_system: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    has_comment: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome_timestamp: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    known_card: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class JwtReplay(Base):
    __tablename__ = "jwt_replay"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    rule_id: str
    indicator: str
    suggestion_uuids: tuple[str, ...]


@dataclass(eq=False)  # compared by identity; `written` changes once, under Store._lock
class _PendingCards:
    """Cards waiting to be logged. Raw ids stay in this process's memory only; they are hashed on write."""

    service_id: str
    hook: str
    patient_id: str
    hook_instance: str
    cards: tuple[tuple[str, str, str, str], ...]  # uuid, rule id, indicator, suggestion uuids (JSON)
    issued_at: datetime
    written: bool = False  # set under Store._lock by the batch that wrote it


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer; survives kill -9
    cursor.execute("PRAGMA busy_timeout=5000")
    # WAL + NORMAL: a commit no longer waits for an fsync, which dominated order-sign under load
    # (make bench). A killed process still loses nothing; a power cut may lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _engine(database_url: str) -> Engine:
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise StoreConfigError(f"TDM1_CDS_DATABASE_URL is not a database URL: {exc}") from None
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "postgresql":
        if url.get_driver_name() in ("", "psycopg2"):
            url = url.set(drivername="postgresql+psycopg")  # the driver this package installs
        # A database that is down or unreachable must cost a hook call seconds, not minutes.
        options.update(connect_args={"connect_timeout": 3}, pool_timeout=5, pool_size=5, max_overflow=5)
    try:
        engine = create_engine(url, **options)
    except (ArgumentError, ImportError) as exc:
        raise StoreConfigError(f"TDM1_CDS_DATABASE_URL cannot be used: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name != "postgresql":
        raise StoreConfigError("TDM1_CDS_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    return engine


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> str:
    """Upgrade the schema to head; returns the revision. A pre-migrations database is adopted."""
    from alembic import command
    from alembic.script import ScriptDirectory

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Held to the end of this transaction; PostgreSQL's DDL is transactional too.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
        else:
            # Python's sqlite3 runs DDL outside any transaction: open one, taking the write lock
            # first, so processes opening one file together migrate one at a time and all or nothing.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config = _alembic_config(connection)
        tables = set(inspect(connection).get_table_names())
        if "issued_cards" in tables and "alembic_version" not in tables:
            command.stamp(config, "0001")  # made by metadata.create_all before there were migrations
        command.upgrade(config, "head")
        return ScriptDirectory.from_config(config).get_current_head() or ""


def migrate_url(database_url: str) -> str:
    """`tdm1-cds migrate`: upgrade the database named by the URL; raises StoreUnavailable if unreachable."""
    engine = _engine(database_url)
    try:
        return migrate(engine)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"the database is unavailable ({type(exc).__name__})") from None
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def _insert(engine: Engine, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING on both databases: repeats and retried writes are no-ops."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


class Store:
    def __init__(
        self,
        database_url: str,
        hash_key: str = "",
        *,
        migrate_on_open: bool = True,
        retry_after_seconds: float = 5.0,
        backlog_limit: int = 10_000,
    ) -> None:
        self.engine: Engine = _engine(database_url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._key: bytes | None = hash_key.encode() if hash_key else None
        self._ephemeral_key = secrets.token_bytes(32)
        self._retry_after = retry_after_seconds
        self._backlog_limit = backlog_limit
        self._reset_process_state()
        self._schema_ready = False
        # Built once: a new statement per call cost SQLAlchemy a cache-key walk on every card write.
        self._card_insert = _insert(self.engine, IssuedCard.__table__)
        if hasattr(os, "register_at_fork"):
            # gunicorn forks workers after create_app: a pooled connection must never be shared.
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())
        if migrate_on_open:
            self.ensure_schema()

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        # One card-log writer at a time in a process (group commit): see flush_backlog.
        self._flush_lock = threading.Lock()
        self._backlog: deque[_PendingCards] = deque()
        self._down_until = 0.0

    def _mark_down(self) -> None:
        self._down_until = time.monotonic() + self._retry_after

    def _after_fork(self) -> None:
        self.engine.dispose(close=False)
        self._reset_process_state()

    # -- schema ---------------------------------------------------------------------------------

    def ensure_schema(self, *, force: bool = False) -> bool:
        """Upgrade to head if not done yet; False (and a log line) when the database is unreachable.

        After a failure, calls within retry_after_seconds answer False at once (unless forced, as
        the readiness probe does), so a database that is down costs hook calls no connect timeouts.
        """
        if self._schema_ready:
            return True
        if not force and time.monotonic() < self._down_until:
            return False
        try:
            revision = migrate(self.engine)
        except SQLAlchemyError as exc:
            self._mark_down()
            log.error("database unavailable; schema not checked", extra={"error": type(exc).__name__})
            return False
        except Exception as exc:  # e.g. a database at a revision this version does not know
            self._mark_down()
            log.error("database schema cannot be upgraded", extra={"error": type(exc).__name__})
            return False
        self._schema_ready = True
        log.info("database schema at head", extra={"revision": revision, "dialect": self.engine.dialect.name})
        return True

    def _require_schema(self) -> None:
        if not self.ensure_schema():
            raise StoreUnavailable("the database is unavailable")

    # -- hashing --------------------------------------------------------------------------------

    def _hash_key(self) -> bytes:
        """The configured key, else one kept in the database so hashes stay stable across restarts."""
        if self._key is None:
            self._require_schema()
            with self._sessions.begin() as session:
                row = session.get(Meta, "patient_hash_key")
                if row is None:
                    session.execute(
                        _insert(self.engine, Meta.__table__).values(
                            key="patient_hash_key", value=secrets.token_hex(32)
                        )
                    )
                    row = session.get(Meta, "patient_hash_key", populate_existing=True)
                assert row is not None
                self._key = row.value.encode()
        return self._key

    def keyed_hash(self, value: str) -> str:
        """For log lines: never raises. With the database down and no configured key, a per-process key."""
        try:
            key = self._hash_key()
        except (StoreUnavailable, SQLAlchemyError):
            key = self._ephemeral_key
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

    # -- health ---------------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            if not self.ensure_schema(force=True):
                return False
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        if self._backlog:
            self.flush_backlog()
        return True

    @property
    def backlog_size(self) -> int:
        return sum(len(p.cards) for p in self._backlog)

    # -- issued cards ---------------------------------------------------------------------------

    def log_cards(
        self, service_id: str, hook: str, patient_id: str, hook_instance: str, cards: Iterable[dict[str, Any]]
    ) -> bool:
        """Log issued cards in one transaction. False if they had to wait in the backlog (never raises
        for a database error: the EHR gets its cards whatever happens here)."""
        pending = _PendingCards(
            service_id,
            hook,
            patient_id,
            hook_instance,
            tuple(
                (
                    str(card["uuid"]),
                    str(card["source"]["topic"]["code"]),
                    str(card["indicator"]),
                    json.dumps([s["uuid"] for s in card.get("suggestions", [])]),
                )
                for card in cards
            ),
            datetime.now(UTC),
        )
        if not pending.cards:
            return True
        with self._lock:
            self._backlog.append(pending)
            self._trim_backlog()
            if time.monotonic() < self._down_until:
                return False  # the database failed moments ago: do not make this call wait for it
        return self.flush_backlog(pending)

    def _trim_backlog(self) -> None:
        while self.backlog_size > self._backlog_limit and len(self._backlog) > 1:
            dropped = self._backlog.popleft()
            metrics.card_log_dropped(len(dropped.cards))
            log.error("card log backlog full; oldest cards dropped", extra={"cards": len(dropped.cards)})

    def flush_backlog(self, mine: _PendingCards | None = None) -> bool:
        """Write every waiting card in one transaction; True when nothing is left waiting (or, given
        `mine`, when those cards are written).

        Group commit: one writer per process at a time. Calls that arrive while a write is under way
        wait for it (without the GIL), and the next writer takes all their cards in one transaction:
        under load a handful of transactions instead of one per call, each competing for SQLite's
        write lock with the other workers (whose busy handler sleeps 1 to 100 ms). A call still
        answers only after its cards are written, as before.
        """
        with self._flush_lock:
            with self._lock:
                if mine is not None and mine.written:
                    return True  # the batch written while this call waited had its cards
                if mine is not None and time.monotonic() < self._down_until:
                    return False  # the write this call waited for failed: do not try again in turn
                batch = list(self._backlog)
            if not batch:
                return True
            written = self._write_batch(batch)
            return mine.written if mine is not None else written

    def drain(self, timeout: float = DRAIN_SECONDS) -> int:
        """When the process stops: one last write of the waiting cards. What still cannot be written
        is lost with this process's memory; it is counted and logged as dropped, not lost unseen.
        Returns how many cards were dropped.

        The write gets `timeout` seconds: a database that hangs (no answer, a lock held) would
        otherwise hold the worker until gunicorn kills it, and the cards would go uncounted. A
        batch still being written then stays in the backlog, so it is counted as dropped."""
        if not self._backlog:
            return 0
        writer = threading.Thread(target=self._flush_quietly, name="card-log-drain", daemon=True)
        writer.start()
        writer.join(timeout)
        with self._lock:
            lost, self._backlog = list(self._backlog), deque()
        dropped = sum(len(p.cards) for p in lost)
        if dropped:
            metrics.card_log_dropped(dropped)
            log.error("card log backlog lost as the process stops", extra={"cards": dropped})
        return dropped

    def _flush_quietly(self) -> None:
        try:
            self.flush_backlog()
        except Exception as exc:  # what is left in the backlog is counted by drain
            log.error("card log drain write failed", extra={"error": type(exc).__name__})

    def _write_batch(self, batch: list[_PendingCards]) -> bool:
        try:
            self._require_schema()
            rows = [
                {
                    "uuid": uuid,
                    "service_id": p.service_id,
                    "hook": p.hook,
                    "rule_id": rule_id,
                    "indicator": indicator,
                    "patient_hash": self.strict_hash(p.patient_id),
                    "hook_instance_hash": self.strict_hash(p.hook_instance),
                    "suggestion_uuids": suggestions,
                    "issued_at": p.issued_at,
                }
                for p in batch
                for uuid, rule_id, indicator, suggestions in p.cards
            ]
            with self.engine.begin() as connection:
                connection.execute(self._card_insert, rows)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            self._mark_down()
            for p in {p.service_id for p in batch}:
                metrics.card_log_write_failed(p)
            log.error(
                "card log write failed; cards kept for retry",
                extra={"error": type(exc).__name__, "waiting": self.backlog_size},
            )
            return False
        written = {id(p) for p in batch}
        with self._lock:
            for p in batch:
                p.written = True
            # Others may have appended (or trimmed) meanwhile: drop exactly what was written.
            self._backlog = deque(p for p in self._backlog if id(p) not in written)
            self._down_until = 0.0
            return not self._backlog

    def strict_hash(self, value: str) -> str:
        """For stored rows: the stable key or an exception, never the per-process fallback."""
        return hmac.new(self._hash_key(), value.encode(), hashlib.sha256).hexdigest()

    def card(self, card_uuid: str) -> CardRecord | None:
        with self._sessions() as session:
            row = session.get(IssuedCard, card_uuid)
            if row is None:
                return None
            return CardRecord(row.uuid, row.rule_id, row.indicator, tuple(json.loads(row.suggestion_uuids)))

    def issued(self) -> list[IssuedCard]:
        with self._sessions() as session:
            return list(session.scalars(select(IssuedCard).order_by(IssuedCard.issued_at)))

    # -- feedback -------------------------------------------------------------------------------

    def save_feedback(self, service_id: str, items: list[dict[str, Any]]) -> int:
        """Store a feedback POST in one transaction, each outcome once; returns how many were new.

        Raises StoreUnavailable (or a SQLAlchemyError) when nothing could be stored: the caller
        answers 503 and the EHR's retry is harmless, since a repeat is a no-op.
        """
        self._require_schema()
        if self._backlog:
            self.flush_backlog()  # so feedback on a card that was waiting finds it
        now = datetime.now(UTC)
        rows = [self._feedback_row(service_id, item, now) for item in items]
        # RETURNING tells a new row from a repeat on both databases (rowcount is -1 on some drivers).
        statement = _insert(self.engine, Feedback.__table__).returning(Feedback.id)
        outcomes: list[tuple[str, bool]] = []
        with self.engine.begin() as connection:
            known = set(
                connection.scalars(
                    select(IssuedCard.uuid).where(IssuedCard.uuid.in_({r["card_uuid"] for r in rows}))
                )
            )
            for row in rows:
                row["known_card"] = row["card_uuid"] in known
                outcomes.append((row["outcome"], connection.execute(statement, row).first() is not None))
        # Counted once committed: a POST rolled back (and answered 503) stored nothing, and its
        # retry is what stores the items, so counting them here too counted them twice as new.
        for outcome, new in outcomes:
            metrics.feedback_received(outcome, new)
        return sum(new for _outcome, new in outcomes)

    @staticmethod
    def _feedback_row(service_id: str, item: dict[str, Any], now: datetime) -> dict[str, Any]:
        override = item.get("overrideReason") if isinstance(item.get("overrideReason"), dict) else {}
        reason = override.get("reason") if isinstance(override.get("reason"), dict) else {}
        accepted = sorted(str(s["id"]) for s in item.get("acceptedSuggestions", []))
        system, code = reason.get("system"), reason.get("code")
        fingerprint = hashlib.sha256(json.dumps([accepted, system, code]).encode()).hexdigest()
        return {
            "service_id": service_id,
            "card_uuid": item["card"],
            "outcome": item["outcome"],
            "accepted_suggestions": json.dumps(accepted),
            "override_system": system if isinstance(system, str) else None,
            "override_code": code if isinstance(code, str) else None,
            "has_comment": bool(override.get("userComment")),
            "outcome_timestamp": item["outcomeTimestamp"],
            "fingerprint": fingerprint,
            "received_at": now,
        }

    def feedback_for(self, card_uuid: str) -> list[Feedback]:
        with self._sessions() as session:
            return list(session.scalars(select(Feedback).where(Feedback.card_uuid == card_uuid)))

    # -- JWT replay cache -----------------------------------------------------------------------

    def remember_jti(self, jti: str, expires_at: datetime, issuer: str = "") -> bool:
        """True the first time (issuer, jti) is seen before it expires; False for a replay.

        Shared by every replica through the database. Raises StoreUnavailable when the database
        cannot answer: whether to refuse the call then is the caller's (fail closed is safer).
        """
        self._require_schema()
        key = _jti_key(jti, issuer)
        now = datetime.now(UTC)
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        try:
            with self.engine.begin() as connection:
                # An expired entry no longer protects anything; its jti may be seen again.
                connection.execute(delete(JwtReplay).where(JwtReplay.key == key, JwtReplay.expires_at <= now))
                statement = _insert(self.engine, JwtReplay.__table__).returning(JwtReplay.key)
                new = (
                    connection.execute(statement, {"key": key, "expires_at": expires_at}).first() is not None
                )
                if secrets.randbelow(100) == 0:  # keep the table small without a scheduler
                    connection.execute(delete(JwtReplay).where(JwtReplay.expires_at <= now))
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the replay cache is unavailable") from exc
        return new

    def forget_jti(self, jti: str, issuer: str = "") -> None:
        """Forget a remembered (issuer, jti), as remember_jti keys it: its call had no effect."""
        self._require_schema()
        key = _jti_key(jti, issuer)
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(JwtReplay).where(JwtReplay.key == key))
        except SQLAlchemyError as exc:
            raise StoreUnavailable("the replay cache is unavailable") from exc

    def close(self) -> None:
        self.engine.dispose()


def _jti_key(jti: str, issuer: str) -> str:
    """How the replay table keys an (issuer, jti): a plain hash, never the jti itself."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


__all__ = [
    "CardRecord",
    "Feedback",
    "IssuedCard",
    "JwtReplay",
    "Session",
    "Store",
    "StoreConfigError",
    "StoreUnavailable",
    "current_revision",
    "head_revision",
    "migrate",
    "migrate_url",
]
