"""The issued-card log and clinicians' feedback, behind SQLAlchemy (SQLite by default).

Nothing here identifies a person: a keyed hash (HMAC-SHA256) of the patient id is enough to count
cards per patient, the hookInstance is hashed too, and a feedback's free-text comment is not kept
(it may name the patient), only whether there was one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


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
    override_system: Mapped[str | None] = mapped_column(String(256), nullable=True)
    override_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    has_comment: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome_timestamp: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    known_card: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Meta(Base):
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    rule_id: str
    indicator: str
    suggestion_uuids: tuple[str, ...]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer; survives kill -9
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Store:
    def __init__(self, database_url: str, hash_key: str = "") -> None:
        self.engine: Engine = create_engine(database_url, pool_pre_ping=True, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        Base.metadata.create_all(self.engine)
        self._key = (hash_key or self._stored_key()).encode()

    def _stored_key(self) -> str:
        """A random key kept in the database, so hashes stay stable across restarts."""
        with self._sessions.begin() as session:
            row = session.get(Meta, "patient_hash_key")
            if row is None:
                row = Meta(key="patient_hash_key", value=secrets.token_hex(32))
                session.add(row)
            return row.value

    def keyed_hash(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def log_cards(
        self, service_id: str, hook: str, patient_id: str, hook_instance: str, cards: Iterable[dict[str, Any]]
    ) -> None:
        now = datetime.now(UTC)
        rows = [
            IssuedCard(
                uuid=card["uuid"],
                service_id=service_id,
                hook=hook,
                rule_id=card["source"]["topic"]["code"],
                indicator=card["indicator"],
                patient_hash=self.keyed_hash(patient_id),
                hook_instance_hash=self.keyed_hash(hook_instance),
                suggestion_uuids=json.dumps([s["uuid"] for s in card.get("suggestions", [])]),
                issued_at=now,
            )
            for card in cards
        ]
        if rows:
            with self._sessions.begin() as session:
                session.add_all(rows)

    def card(self, card_uuid: str) -> CardRecord | None:
        with self._sessions() as session:
            row = session.get(IssuedCard, card_uuid)
            if row is None:
                return None
            return CardRecord(row.uuid, row.rule_id, row.indicator, tuple(json.loads(row.suggestion_uuids)))

    def save_feedback(self, service_id: str, items: list[dict[str, Any]]) -> int:
        """Store each feedback item once; a repeat of the same outcome is a no-op. Returns how many were new."""
        stored = 0
        now = datetime.now(UTC)
        for item in items:
            reason = (
                item.get("overrideReason", {}).get("reason", {})
                if isinstance(item.get("overrideReason"), dict)
                else {}
            )
            accepted = sorted(s["id"] for s in item.get("acceptedSuggestions", []))
            fingerprint = hashlib.sha256(
                json.dumps([accepted, reason.get("system"), reason.get("code")]).encode()
            ).hexdigest()
            row = Feedback(
                service_id=service_id,
                card_uuid=item["card"],
                outcome=item["outcome"],
                accepted_suggestions=json.dumps(accepted),
                override_system=reason.get("system"),
                override_code=reason.get("code"),
                has_comment=bool(item.get("overrideReason", {}).get("userComment"))
                if isinstance(item.get("overrideReason"), dict)
                else False,
                outcome_timestamp=item["outcomeTimestamp"],
                fingerprint=fingerprint,
                known_card=self.card(item["card"]) is not None,
                received_at=now,
            )
            try:
                with self._sessions.begin() as session:
                    session.add(row)
                stored += 1
            except IntegrityError:
                continue  # the same outcome posted again: stored once
        return stored

    def feedback_for(self, card_uuid: str) -> list[Feedback]:
        with self._sessions() as session:
            return list(session.scalars(select(Feedback).where(Feedback.card_uuid == card_uuid)))

    def issued(self) -> list[IssuedCard]:
        with self._sessions() as session:
            return list(session.scalars(select(IssuedCard).order_by(IssuedCard.issued_at)))

    def close(self) -> None:
        self.engine.dispose()


def open_store(database_url: str, hash_key: str = "") -> Store:
    return Store(database_url, hash_key)


__all__ = ["CardRecord", "Feedback", "IssuedCard", "Session", "Store", "open_store"]
