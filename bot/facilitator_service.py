"""PKH facilitators as a domain service: enrolment with a one-time activation code, the
link to a Telegram chat, their areas and households, and the audit of what they do.

Every method works in the caller's transaction (an AsyncSession), as the other services
do; the operator CLI and, later, the dialog engine own the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.admission import daily_counter
from bot.crypto import KeyRing, SealBroken
from bot.facilitators import (
    CODE_HASH_PURPOSE,
    FACILITATOR_CHANNEL,
    PHONE_HASH_PURPOSE,
    Action,
    Activated,
    ActivationOutcome,
    ActivationRefusal,
    ActivationRefused,
    AuditEntry,
    BadPhone,
    Facilitator,
    FacilitatorInactive,
    Household,
    HouseholdOutcome,
    HouseholdPage,
    IssuedCode,
    PhoneAlreadyEnrolled,
    UnknownFacilitator,
    code_expiry,
    code_state,
    new_activation_code,
    new_facilitator_id,
    normalize_code,
    normalize_facilitator_id,
    normalize_name,
    parse_areas,
)
from bot.nik import InvalidNik, mask_nik, parse_nik
from bot.storage.admission_repository import AdmissionRepository
from bot.storage.database import Unit
from bot.storage.facilitator_repository import FacilitatorRepository
from bot.storage.models import FacilitatorAccount, FacilitatorAuditEntry, FacilitatorHousehold
from handlers.phone import normalize_phone

_NEW_ID_ATTEMPTS = 8


def name_seal_context(facilitator_id: str) -> str:
    return f"facilitator-name:{facilitator_id}"


def phone_seal_context(facilitator_id: str) -> str:
    return f"facilitator-phone:{facilitator_id}"


def household_seal_context(facilitator_id: str, nik_hash: str) -> str:
    return f"facilitator-household:{facilitator_id}:{nik_hash}"


# The admission counter of codes that did not work, per chat and day.
ACTIVATION_FAILURES = "activation-fail"
HOUSEHOLDS_PER_PAGE = 8


class FacilitatorService:
    def __init__(
        self,
        keys: KeyRing,
        *,
        clock: Callable[[], datetime],
        activation_failures_per_day: int = 5,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._failures_per_day = activation_failures_per_day

    async def enrol(
        self, session: AsyncSession, name: str, phone: str, areas: str | Iterable[str]
    ) -> tuple[Facilitator, IssuedCode]:
        """A new facilitator and its first activation code, shown to the operator once."""
        clean_name = normalize_name(name)
        e164 = normalize_phone(phone)
        if e164 is None:
            raise BadPhone
        codes = parse_areas(areas)
        repository = FacilitatorRepository(session)
        phone_hash = self._keys.keyed_hash(PHONE_HASH_PURPOSE, e164)
        enrolled = await repository.by_phone_hash(phone_hash)
        if enrolled is not None and enrolled.active:
            raise PhoneAlreadyEnrolled(enrolled.id)
        if enrolled is not None:
            # Someone deactivated comes back: the old enrolment keeps its history and
            # gives up the phone, so there is still one enrolment per phone.
            enrolled.phone_hash = None
            await session.flush()
        facilitator_id = await self._unused_id(repository)
        now = self._clock()
        code = new_activation_code()
        account = FacilitatorAccount(
            id=facilitator_id,
            sealed_name=self._keys.seal(
                clean_name.encode(), context=name_seal_context(facilitator_id)
            ),
            sealed_phone=self._keys.seal(e164.encode(), context=phone_seal_context(facilitator_id)),
            phone_hash=phone_hash,
            active=True,
            created_at=now,
            deactivated_at=None,
            code_hash=self._code_hash(code),
            code_expires_at=code_expiry(now),
            code_used_at=None,
            chat_hash=None,
        )
        repository.add(account, codes)
        self._record(repository, facilitator_id, Action.ENROLMENT, None, now)
        return self._facilitator(account, codes), IssuedCode(code, code_expiry(now))

    async def new_code(self, session: AsyncSession, facilitator_id: str) -> IssuedCode:
        """A fresh code; the previous one stops working, and so does the linked chat (a new
        code is for a new phone or account, or a lost one), until the new code is used."""
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        if not account.active:
            raise FacilitatorInactive(account.id)
        now = self._clock()
        code = new_activation_code()
        account.code_hash = self._code_hash(code)
        account.code_expires_at = code_expiry(now)
        account.code_used_at = None
        account.chat_hash = None
        self._record(repository, account.id, Action.CODE_ISSUED, None, now)
        return IssuedCode(code, code_expiry(now))

    async def activate(
        self, session: AsyncSession, code: str, chat_address_hash: str
    ) -> Facilitator | ActivationRefused:
        """Link the chat to the facilitator whose code this is: once, before it expires,
        while the facilitator is active and the chat is nobody else's.

        The dialog engine holds the chat's conversation row locked meanwhile, so one chat
        cannot link twice at once; two chats racing for one code meet at `claim_code`.
        """
        normalized = normalize_code(code)
        if normalized is None:
            return ActivationRefused(ActivationRefusal.UNKNOWN_CODE)
        repository = FacilitatorRepository(session)
        code_hash = self._keys.keyed_hash(CODE_HASH_PURPOSE, normalized)
        account = await repository.by_code_hash(code_hash)
        now = self._clock()
        if account is None:
            return ActivationRefused(ActivationRefusal.UNKNOWN_CODE)
        if not account.active:
            return ActivationRefused(ActivationRefusal.DEACTIVATED)
        if account.code_used_at is not None:
            return ActivationRefused(ActivationRefusal.ALREADY_USED)
        if account.code_expires_at is None or now >= account.code_expires_at:
            return ActivationRefused(ActivationRefusal.EXPIRED)
        linked = await repository.by_chat_hash(chat_address_hash)
        if linked is not None and linked.id != account.id:
            if linked.active:
                return ActivationRefused(ActivationRefusal.CHAT_LINKED_ELSEWHERE)
            # A deactivated enrolment of (most likely) the same person: it lets go.
            linked.chat_hash = None
            await session.flush()
        if not await repository.claim_code(account.id, code_hash, chat_address_hash, now):
            return ActivationRefused(ActivationRefusal.ALREADY_USED)
        self._record(repository, account.id, Action.ACTIVATION, None, now)
        areas = (await repository.areas_of([account.id]))[account.id]
        return self._facilitator(account, areas)

    async def activate_in_chat(
        self, unit: Unit, code: str, chat_address_hash: str
    ) -> ActivationOutcome:
        """`activate`, for a chat: a few codes that do not work a day, then a refusal,
        so codes cannot be guessed. The attempt is counted first, in the same statement
        style as the look-up limits, and given back when the code works."""
        attempt = daily_counter(
            ACTIVATION_FAILURES, chat_address_hash, self._failures_per_day, self._clock()
        )
        counters = AdmissionRepository(unit)
        if not await counters.take_all([attempt]):
            return ActivationRefused(ActivationRefusal.TOO_MANY_ATTEMPTS)
        outcome = await self.activate(await unit.session(), code, chat_address_hash)
        if isinstance(outcome, ActivationRefused):
            return outcome
        await counters.give_back_all([attempt])
        return Activated(outcome.id, outcome.areas)

    async def note(
        self, session: AsyncSession, facilitator_id: str, action: Action, nik: str | None
    ) -> None:
        """What a facilitator did for a household: a line of the audit, and the household
        on their list (when its NIK is of their areas: the dialogs refuse the others)."""
        await self.record(session, facilitator_id, action, nik)
        if nik is not None:
            await self.add_household(session, facilitator_id, nik)

    async def household_page(
        self, session: AsyncSession, facilitator_id: str, page: int
    ) -> HouseholdPage:
        """One page of the facilitator's households (the last one if `page` is past it)."""
        listed = await self.households(session, facilitator_id)
        last = max(0, (len(listed) - 1) // HOUSEHOLDS_PER_PAGE)
        page = min(max(0, page), last)
        start = page * HOUSEHOLDS_PER_PAGE
        return HouseholdPage(
            tuple(listed[start : start + HOUSEHOLDS_PER_PAGE]),
            page,
            len(listed),
            HOUSEHOLDS_PER_PAGE,
        )

    async def facilitator_for_chat(
        self, session: AsyncSession, chat_address_hash: str
    ) -> Facilitator | None:
        """The active facilitator linked to this chat, read afresh for each message: a
        deactivation takes effect on the next one."""
        repository = FacilitatorRepository(session)
        account = await repository.by_chat_hash(chat_address_hash)
        if account is None or not account.active:
            return None
        areas = (await repository.areas_of([account.id]))[account.id]
        return self._facilitator(account, areas)

    async def get(self, session: AsyncSession, facilitator_id: str) -> Facilitator:
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        areas = (await repository.areas_of([account.id]))[account.id]
        return self._facilitator(account, areas)

    async def all(self, session: AsyncSession) -> list[Facilitator]:
        repository = FacilitatorRepository(session)
        accounts = await repository.all()
        areas = await repository.areas_of([account.id for account in accounts])
        return [self._facilitator(account, areas[account.id]) for account in accounts]

    async def deactivate(self, session: AsyncSession, facilitator_id: str) -> bool:
        """False when the facilitator was already inactive. There is no reactivation: an
        operator enrols the person again, under a new id, if they come back; the old
        enrolment then gives up its phone and, on activation, its chat."""
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        if not account.active:
            return False
        now = self._clock()
        account.active = False
        account.deactivated_at = now
        self._record(repository, account.id, Action.DEACTIVATION, None, now)
        await session.flush()
        return True

    async def set_areas(
        self, session: AsyncSession, facilitator_id: str, areas: str | Iterable[str]
    ) -> tuple[str, ...]:
        codes = parse_areas(areas)
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        await repository.replace_areas(account.id, codes)
        self._record(repository, account.id, Action.AREAS_CHANGED, None, self._clock())
        return codes

    async def add_household(
        self, session: AsyncSession, facilitator_id: str, nik: str
    ) -> HouseholdOutcome:
        """Put a household on the facilitator's list, if its NIK is from their areas."""
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        if not account.active:
            raise FacilitatorInactive(account.id)
        try:
            parsed = parse_nik(nik)
        except InvalidNik:
            return HouseholdOutcome.NOT_A_NIK
        areas = (await repository.areas_of([account.id]))[account.id]
        if parsed.kecamatan_code not in areas:
            return HouseholdOutcome.OUTSIDE_AREA
        nik_hash = self._keys.nik_hash(parsed.value)
        if await repository.household(account.id, nik_hash) is not None:
            return HouseholdOutcome.ALREADY_LISTED
        repository.add_household(
            FacilitatorHousehold(
                facilitator_id=account.id,
                nik_hash=nik_hash,
                sealed_nik=self._keys.seal(
                    parsed.value.encode(), context=household_seal_context(account.id, nik_hash)
                ),
                added_at=self._clock(),
            )
        )
        return HouseholdOutcome.ADDED

    async def record(
        self, session: AsyncSession, facilitator_id: str, action: Action, nik: str | None = None
    ) -> None:
        """One line of the audit: the NIK, if any, only as its keyed hash."""
        nik_hash = None if nik is None else self._keys.nik_hash(nik)
        repository = FacilitatorRepository(session)
        self._record(repository, facilitator_id, action, nik_hash, self._clock())

    async def audit(self, session: AsyncSession, facilitator_id: str) -> list[AuditEntry]:
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        return [
            AuditEntry(at=row.at, action=Action(row.action), nik_hash=row.nik_hash)
            for row in await repository.audit(account.id)
        ]

    async def households(self, session: AsyncSession, facilitator_id: str) -> list[Household]:
        """The facilitator's households, NIKs masked, each with the tickets this
        facilitator filed about it (under its id, or from its linked chat)."""
        repository = FacilitatorRepository(session)
        account = await self._account(repository, facilitator_id)
        rows = await repository.households(account.id)
        tickets = await repository.tickets_about(
            account.id, FACILITATOR_CHANNEL, account.chat_hash, [row.nik_hash for row in rows]
        )
        listed = []
        for row in rows:
            context = household_seal_context(account.id, row.nik_hash)
            try:
                masked = mask_nik(self._keys.unseal(row.sealed_nik, context=context).decode())
            except SealBroken:
                masked = "????????????????"
            listed.append(Household(masked, row.added_at, tuple(tickets.get(row.nik_hash, ()))))
        return listed

    async def _account(
        self, repository: FacilitatorRepository, facilitator_id: str
    ) -> FacilitatorAccount:
        normalized = normalize_facilitator_id(facilitator_id)
        account = await repository.get(normalized)
        if account is None:
            raise UnknownFacilitator(facilitator_id.strip()[:16])
        return account

    async def _unused_id(self, repository: FacilitatorRepository) -> str:
        # 32^6 ids: a clash is rare, but an id must never be handed out twice.
        for _ in range(_NEW_ID_ATTEMPTS):
            candidate = new_facilitator_id()
            if await repository.get(candidate) is None:
                return candidate
        raise RuntimeError("no unused facilitator id found")

    def _code_hash(self, code: str) -> str:
        normalized = normalize_code(code)
        assert normalized is not None
        return self._keys.keyed_hash(CODE_HASH_PURPOSE, normalized)

    def _record(
        self,
        repository: FacilitatorRepository,
        facilitator_id: str,
        action: Action,
        nik_hash: str | None,
        at: datetime,
    ) -> None:
        repository.record(
            FacilitatorAuditEntry(
                at=at, facilitator_id=facilitator_id, action=action.value, nik_hash=nik_hash
            )
        )

    def _facilitator(self, account: FacilitatorAccount, areas: Iterable[str]) -> Facilitator:
        name = self._keys.unseal(account.sealed_name, context=name_seal_context(account.id))
        phone = self._keys.unseal(account.sealed_phone, context=phone_seal_context(account.id))
        return Facilitator(
            id=account.id,
            name=name.decode(),
            phone=phone.decode(),
            areas=tuple(areas),
            active=account.active,
            linked=account.chat_hash is not None,
            code=code_state(account.code_expires_at, account.code_used_at, self._clock()),
            code_expires_at=account.code_expires_at,
            created_at=account.created_at,
            deactivated_at=account.deactivated_at,
        )
