"""Tables of the bot. Personal data is only ever stored sealed or as a keyed hash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.message_repeats import STORED_LENGTH

# Stable constraint names, so Alembic migrations look the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar = {datetime: UtcDateTime}


class Conversation(Base):
    """One row per (channel, address): who is talking, in which language, at which step.

    The address (chat id, phone number) is kept only as a keyed hash. The step's working
    data (a NIK typed a moment ago, for instance) is sealed and dropped when the step
    expires after inactivity; language and consent outlive it.
    """

    __tablename__ = "conversations"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    consent_version: Mapped[str | None] = mapped_column(String(16))
    consented_at: Mapped[datetime | None] = mapped_column()
    step: Mapped[str] = mapped_column(String(32))
    sealed_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column()
    step_expires_at: Mapped[datetime] = mapped_column()
    # Which channel session the last inputs came from and how many of its inputs were
    # applied: a gateway that repeats a request gets the same screen back, unchanged.
    turn_session: Mapped[str | None] = mapped_column(String(64))
    turn_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sealed_last_reply: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The ids of the last chat messages applied, so that one Telegram delivers twice is
    # applied once (bot/message_repeats.py).
    recent_messages: Mapped[str | None] = mapped_column(String(STORED_LENGTH))


class AdmissionCounter(Base):
    """How many look-ups one key (an address, a NIK, a shard of the whole service) was
    admitted in one fixed window. Counted and admitted by one upsert, so no race lets
    more through than the limit."""

    __tablename__ = "admission_counters"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(Integer)
    # The limit the last taker asked for; the upsert compares `used` with the new one.
    cap: Mapped[int] = mapped_column(Integer)


class NikMatch(Base):
    """An address whose check of this NIK matched the name: the NIK's owner (or someone
    they trust). Such an address is not locked out when strangers try wrong names."""

    __tablename__ = "nik_matches"

    nik_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    matched_at: Mapped[datetime] = mapped_column()


class Filing(Base):
    """A proposal, objection or correction. What was filed (NIK, name, text) is sealed;
    the subject's NIK is also kept as a keyed hash to find duplicates, and the filer's
    address (chat id, phone) sealed, to tell them when the ticket moves."""

    __tablename__ = "filings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID: the Idempotency-Key
    ticket: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    sealed_document: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8))
    filer_channel: Mapped[str] = mapped_column(String(16))
    filer_hash: Mapped[str] = mapped_column(String(64))
    sealed_filer_address: Mapped[bytes] = mapped_column(LargeBinary)
    facilitator_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(20))
    stage_reason: Mapped[str | None] = mapped_column(String(64))
    registry_ticket: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        Index("ix_filings_filer", "filer_channel", "filer_hash", "created_at"),
        Index("ix_filings_subject", "kind", "subject_hash", "stage"),
    )


class FilingPhotoRef(Base):
    """A photo of a filing, by the SHA-256 of its re-encoded JPEG in the blob store."""

    __tablename__ = "filing_photos"

    filing_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("filings.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))


class FilingEvent(Base):
    """A ticket's history: every stage it reached, with the reason, once each."""

    __tablename__ = "filing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    filing_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("filings.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(20))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()


class OutboxEntry(Base):
    """A filing on its way to the registry. Written in the same transaction as the filing;
    a worker claims it with a lease, sends it, and records the outcome."""

    __tablename__ = "outbox"

    filing_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("filings.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(12))  # pending, delivered, refused, dead
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)


class OutboundMessage(Base):
    """A message the service sends on its own (a ticket moved). Delivered by the channel's
    outbound port; a channel that cannot push (USSD) holds it for the next session."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str] = mapped_column(String(64))
    sealed_address: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12))  # pending, held, sent, gone, failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_outbound_messages_due", "state", "next_attempt_at"),
        Index("ix_outbound_messages_address", "channel", "address_hash", "state"),
    )


class RegistryCursor(Base):
    """Where a follower of a registry feed has read up to."""

    __tablename__ = "registry_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(512))
    updated_at: Mapped[datetime] = mapped_column()


class Subscription(Base):
    """A chat (or a phone) that wants to hear when a household's status changes. The NIK
    is sealed; its keyed hash is what the quarter's change feed is joined on. A
    subscription a PKH facilitator holds for a household they serve names the facilitator:
    its notices go out in one digest per chat."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str] = mapped_column(String(64))
    sealed_address: Mapped[bytes] = mapped_column(LargeBinary)
    nik_hash: Mapped[str] = mapped_column(String(64), index=True)
    sealed_nik: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(12))  # active, retired
    created_at: Mapped[datetime] = mapped_column()
    retired_at: Mapped[datetime | None] = mapped_column()
    facilitator_id: Mapped[str | None] = mapped_column(
        String(8), ForeignKey("facilitators.id", ondelete="SET NULL")
    )

    __table_args__ = (
        UniqueConstraint("channel", "address_hash", "nik_hash", name="uq_subscriptions_who_whom"),
        Index("ix_subscriptions_address", "channel", "address_hash"),
        Index("ix_subscriptions_facilitator", "facilitator_id", "state"),
    )


class Notice(Base):
    """One quarterly notice per (subscription, quarter): unique, so never two."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    quarter: Mapped[str] = mapped_column(String(8))
    change: Mapped[str] = mapped_column(Text)  # deciles, programmes, reason: no NIK
    state: Mapped[str] = mapped_column(String(12))  # pending, sent, held, retired, failed
    attempts: Mapped[int] = mapped_column(Integer)
    lease_until: Mapped[datetime | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("subscription_id", "quarter", name="uq_notices_subscription_quarter"),
        Index("ix_notices_due", "quarter", "state"),
    )


class NoticeRun(Base):
    """Where the run of one quarter stands: the feed cursor after the last page ingested."""

    __tablename__ = "notice_runs"

    quarter: Mapped[str] = mapped_column(String(8), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(512))
    ingested: Mapped[bool] = mapped_column()
    changes_read: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class FacilitatorAccount(Base):
    """A PKH facilitator enrolled by an operator. Name and phone are sealed; the phone's
    keyed hash keeps one enrolment per phone at a time. The activation code is kept only as a keyed
    hash, until a new one replaces it; the linked Telegram chat as its address hash."""

    __tablename__ = "facilitators"

    id: Mapped[str] = mapped_column(String(8), primary_key=True)  # F- and 6 characters
    sealed_name: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_phone: Mapped[bytes] = mapped_column(LargeBinary)
    # None once deactivated and the phone enrolled again under a new id.
    phone_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column()
    created_at: Mapped[datetime] = mapped_column()
    deactivated_at: Mapped[datetime | None] = mapped_column()
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    code_expires_at: Mapped[datetime | None] = mapped_column()
    code_used_at: Mapped[datetime | None] = mapped_column()
    chat_hash: Mapped[str | None] = mapped_column(String(64), unique=True)


class FacilitatorArea(Base):
    """A kecamatan a facilitator serves, one row each rather than a list in a text column:
    the database can then answer "who serves 330201" and never parses a stored string."""

    __tablename__ = "facilitator_areas"

    facilitator_id: Mapped[str] = mapped_column(
        String(8), ForeignKey("facilitators.id", ondelete="CASCADE"), primary_key=True
    )
    kecamatan: Mapped[str] = mapped_column(String(6), primary_key=True)


class FacilitatorHousehold(Base):
    """A household on a facilitator's list: its NIK sealed (to show it masked), its keyed
    hash to join with filings and subscriptions."""

    __tablename__ = "facilitator_households"

    facilitator_id: Mapped[str] = mapped_column(
        String(8), ForeignKey("facilitators.id", ondelete="CASCADE"), primary_key=True
    )
    nik_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed_nik: Mapped[bytes] = mapped_column(LargeBinary)
    added_at: Mapped[datetime] = mapped_column()


class FacilitatorAuditEntry(Base):
    """What a facilitator did, when, about whom: the NIK only as its keyed hash."""

    __tablename__ = "facilitator_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column()
    facilitator_id: Mapped[str] = mapped_column(String(8), ForeignKey("facilitators.id"))
    action: Mapped[str] = mapped_column(String(16))
    nik_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_facilitator_audit_facilitator", "facilitator_id", "at"),)
