"""Quarterly notices of the households a PKH facilitator follows, on SQLite and PostgreSQL:
one digest per facilitator chat and run, NIKs masked, cut into parts under Telegram's
limit; never sent twice; nothing for a deactivated facilitator or a blocked chat; and the
citizens' own notices as before."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from sqlalchemy import select

from bot.app import Services, utc_now
from bot.dialogs.model import Reply
from bot.dialogs.notifications import (
    DIGEST_PART_LIMIT,
    DigestHousehold,
    render_quarter_digest,
)
from bot.dialogs.status_report import SCAM_WARNING, quarter_words
from bot.facilitator_service import FacilitatorService
from bot.facilitators import Facilitator
from bot.filings import Filer
from bot.i18n import translator
from bot.nik import mask_nik
from bot.notice_run import MAX_ATTEMPTS
from bot.notifications import QuarterNotice
from bot.outbound import Delivery, DeliveryResult
from bot.storage.models import Conversation, Subscription
from bot.storage.notice_repository import NoticeRepository
from bot.subscription_service import SubscriptionService
from bot.subscriptions import Subscribed, TooManySubscriptions
from registry_client.sandbox import RunningSandbox
from registry_client.sandbox.population import Person
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram_bot import App
from tests.test_notices import CHAT, advance, changes_of, everyone, run

FACILITATOR_CHAT = 7171
OTHER_FACILITATOR_CHAT = 7272


def chat_of(services: Services, chat: int, facilitator_id: str | None = None) -> Filer:
    address = str(chat)
    return Filer(
        "telegram",
        address,
        services.keys.address_hash("telegram", address),
        facilitator_id=facilitator_id,
    )


async def enrol(
    services: Services, people: list[Person], chat: int, phone: str = "081234567890"
) -> Facilitator:
    """A facilitator serving these people's kecamatan, linked to `chat` with their code."""
    facilitators = FacilitatorService(services.keys, clock=utc_now)
    areas = sorted({person.nik[:6] for person in people})
    async with services.database.transaction() as session:
        _, code = await facilitators.enrol(session, "Siti Aminah", phone, areas)
    async with services.database.transaction() as session:
        linked = await facilitators.activate(
            session, code.code, chat_of(services, chat).address_hash
        )
    assert isinstance(linked, Facilitator)
    return linked


async def follow(services: Services, who: Filer, people: list[Person]) -> None:
    async with services.database.transaction() as session:
        for person in people:
            outcome = await services.subscriptions.subscribe(session, who, person.nik)
            assert outcome == Subscribed(already=False)


def texts_to(fake: FakeTelegram, chat: int) -> list[str]:
    return [str(message["text"]) for message in fake.messages_to(chat)]


async def notice_counts(services: Services, quarter: str) -> dict[str, int]:
    async with services.database.transaction() as session:
        return await NoticeRepository(session).counts(quarter)


async def subscriptions_of(services: Services, who: Filer) -> list[Subscription]:
    async with services.database.transaction() as session:
        rows = await session.execute(
            select(Subscription)
            .where(
                Subscription.channel == who.channel,
                Subscription.address_hash == who.address_hash,
            )
            .order_by(Subscription.id)
        )
        return list(rows.scalars())


async def test_a_facilitator_hears_once_in_one_digest_and_a_citizen_alongside_as_before(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    *served, citizen = sandbox.population.sample(7)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    fake.add_user(FACILITATOR_CHAT)
    fake.add_user(CHAT)
    await follow(services, chat_of(services, FACILITATOR_CHAT, facilitator.id), served)
    await follow(services, chat_of(services, CHAT), [citizen])

    quarter = await advance(sandbox, changes=everyone(sandbox))
    changes = await changes_of(services, quarter)
    summary = await run(services, bot_app, quarter)
    assert (summary.matched, summary.sent, summary.digests) == (7, 7, 1)

    [digest] = texts_to(fake, FACILITATOR_CHAT)
    header, *_ = digest.splitlines()
    assert f"{len(served)} " in header and "part" not in header
    for person in served:
        change = changes[person.nik]
        [line] = [line for line in digest.splitlines() if line.startswith(mask_nik(person.nik))]
        assert f"{change.previous.decile}→{change.current.decile}" in line
        for code in set(change.previous.programmes) ^ set(change.current.programmes):
            assert code in line
    assert re.search(r"\d{16}", digest) is None  # no NIK in the clear
    assert digest.count(translator("id").gettext(SCAM_WARNING)) == 1  # the chat's language
    assert digest.count("/sanggah") == 1

    [notice] = texts_to(fake, CHAT)  # the citizen's own notice, unchanged
    change = changes[citizen.nik]
    assert f"sebelumnya {change.previous.decile}, sekarang {change.current.decile}" in notice
    assert "/sanggah" in notice and citizen.nik not in notice

    again = await run(services, bot_app, quarter)
    assert (again.matched, again.sent, again.digests) == (0, 0, 0)
    assert len(texts_to(fake, FACILITATOR_CHAT)) == 1 and len(texts_to(fake, CHAT)) == 1
    assert await notice_counts(services, quarter) == {"sent": 7}


async def test_a_long_digest_arrives_in_parts_each_household_once_despite_a_429(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(200)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    fake.add_user(FACILITATOR_CHAT)
    await follow(services, chat_of(services, FACILITATOR_CHAT, facilitator.id), served)
    quarter = await advance(sandbox, changes=everyone(sandbox))
    fake.inject_retry_after("sendMessage", 1, times=1)  # the first part is refused once

    summary = await run(services, bot_app, quarter)
    parts = texts_to(fake, FACILITATOR_CHAT)
    assert (summary.sent, summary.failed, summary.digests) == (200, 0, len(parts))
    assert len(parts) >= 2 and all(len(part) <= DIGEST_PART_LIMIT for part in parts)
    for number, part in enumerate(parts, start=1):
        assert f"{number}/{len(parts)})" in part.splitlines()[0]
    everything = "\n".join(parts)
    listed = re.findall(r"^\d{4}\*{8}\d{4}", everything, flags=re.MULTILINE)
    assert sorted(listed) == sorted(mask_nik(p.nik) for p in served)  # each household once
    assert re.search(r"\d{16}", everything) is None
    assert everything.count(translator("id").gettext(SCAM_WARNING)) == 1
    assert await notice_counts(services, quarter) == {"sent": 200}
    assert (await run(services, bot_app, quarter)).sent == 0
    assert len(texts_to(fake, FACILITATOR_CHAT)) == len(parts)


class ScriptedPort:
    """Answers each delivery with the next of `outcomes` (then SENT), keeping the texts."""

    def __init__(self, *outcomes: DeliveryResult) -> None:
        self.outcomes = list(outcomes)
        self.texts: list[str] = []

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult:
        self.texts.append(reply.text)
        return self.outcomes.pop(0) if self.outcomes else DeliveryResult(Delivery.SENT)


async def test_a_digest_cut_short_by_a_network_error_sends_only_the_rest_later(
    services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(200)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    await follow(services, chat_of(services, FACILITATOR_CHAT, facilitator.id), served)
    quarter = await advance(sandbox, changes=everyone(sandbox))
    retry = DeliveryResult(Delivery.RETRY, retry_after=0.2)
    port = ScriptedPort(DeliveryResult(Delivery.SENT), retry)

    summary = await services.notice_run({"telegram": port}).run(quarter)
    first, refused, rest = port.texts  # part 1/2, part 2/2 refused, then the rest alone
    assert "1/2)" in first and "2/2)" in refused and "part" not in rest.splitlines()[0]
    told = re.findall(r"^\d{4}\*{8}\d{4}", f"{first}\n{rest}", flags=re.MULTILINE)
    assert sorted(told) == sorted(mask_nik(p.nik) for p in served)  # each household once
    assert f" {len(served) - first.count('********')} " in rest.splitlines()[0]
    assert (summary.sent, summary.failed, summary.digests) == (200, 0, 2)
    assert await notice_counts(services, quarter) == {"sent": 200}


async def test_a_digest_that_keeps_failing_is_given_up_after_the_last_attempt(
    services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(3)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    await follow(services, chat_of(services, FACILITATOR_CHAT, facilitator.id), served)
    quarter = await advance(sandbox, changes=everyone(sandbox))
    retry = DeliveryResult(Delivery.RETRY, retry_after=0.05)
    port = ScriptedPort(*[retry] * MAX_ATTEMPTS)

    summary = await services.notice_run({"telegram": port}).run(quarter)
    assert len(port.texts) == MAX_ATTEMPTS  # one digest a try, not one message per household
    assert (summary.sent, summary.failed, summary.digests) == (0, 3, 0)
    assert await notice_counts(services, quarter) == {"failed": 3}


async def test_a_deactivated_facilitator_gets_nothing_and_their_subscriptions_are_retired(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    *served, citizen = sandbox.population.sample(4)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    fake.add_user(FACILITATOR_CHAT)
    fake.add_user(CHAT)
    held_by = chat_of(services, FACILITATOR_CHAT, facilitator.id)
    await follow(services, held_by, served)
    await follow(services, chat_of(services, CHAT), [citizen])
    async with services.database.transaction() as session:
        assert await FacilitatorService(services.keys, clock=utc_now).deactivate(
            session, facilitator.id
        )

    quarter = await advance(sandbox, changes=everyone(sandbox))
    summary = await run(services, bot_app, quarter)
    assert (summary.matched, summary.sent, summary.retired, summary.digests) == (4, 1, 3, 0)
    assert texts_to(fake, FACILITATOR_CHAT) == []
    assert len(texts_to(fake, CHAT)) == 1
    assert await notice_counts(services, quarter) == {"retired": 3, "sent": 1}
    assert [row.state for row in await subscriptions_of(services, held_by)] == ["retired"] * 3
    assert [row.state for row in await subscriptions_of(services, chat_of(services, CHAT))] == [
        "active"
    ]


async def test_a_lost_phone_gets_no_digest_and_the_new_chat_takes_the_households_along(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(3)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    fake.add_user(FACILITATOR_CHAT)
    fake.add_user(OTHER_FACILITATOR_CHAT)
    old_chat = chat_of(services, FACILITATOR_CHAT, facilitator.id)
    await follow(services, old_chat, served)
    facilitators = FacilitatorService(services.keys, clock=utc_now)
    async with services.database.transaction() as session:
        code = await facilitators.new_code(session, facilitator.id)  # the phone was lost

    quarter = await advance(sandbox, changes=everyone(sandbox))
    summary = await run(services, bot_app, quarter)
    assert (summary.sent, summary.retired, summary.digests) == (0, 3, 0)
    assert texts_to(fake, FACILITATOR_CHAT) == []
    # The subscriptions stay the facilitator's, for the chat they link next.
    assert [row.state for row in await subscriptions_of(services, old_chat)] == ["active"] * 3

    new_chat = chat_of(services, OTHER_FACILITATOR_CHAT, facilitator.id)
    async with services.database.transaction() as session:
        linked = await facilitators.activate(session, code.code, new_chat.address_hash)
        assert isinstance(linked, Facilitator)
        assert await services.subscriptions.follow_facilitator(session, new_chat) == 3
    assert await subscriptions_of(services, old_chat) == []
    async with services.database.transaction() as session:
        listed = await services.subscriptions.list(session, new_chat)
    assert sorted(masked for _, masked in listed.items) == sorted(
        mask_nik(person.nik) for person in served
    )
    later = await advance(sandbox, changes=everyone(sandbox))
    assert (await run(services, bot_app, later)).digests == 1
    assert len(texts_to(fake, OTHER_FACILITATOR_CHAT)) == 1


async def test_a_facilitator_chat_that_blocked_the_bot_retires_its_digest_subscriptions(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(3)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    held_by = chat_of(services, FACILITATOR_CHAT, facilitator.id)
    await follow(services, held_by, served)
    fake.block_chat(FACILITATOR_CHAT)

    quarter = await advance(sandbox, changes=everyone(sandbox))
    summary = await run(services, bot_app, quarter)
    assert (summary.sent, summary.retired, summary.failed, summary.digests) == (0, 3, 0, 0)
    assert [row.state for row in await subscriptions_of(services, held_by)] == ["retired"] * 3
    sends = [c for c in fake.calls if c.method == "sendMessage"]
    assert len(sends) == 1  # one digest tried, not one message per household
    next_quarter = await advance(sandbox, changes=everyone(sandbox))
    assert (await run(services, bot_app, next_quarter)).matched == 0


async def test_two_runs_at_once_send_each_facilitator_chat_one_digest(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    people = sandbox.population.sample(40)
    chats = [FACILITATOR_CHAT + n for n in range(8)]  # eight facilitators, a chat each
    for n, chat in enumerate(chats):
        served = people[n * 5 : n * 5 + 5]
        facilitator = await enrol(services, served, chat, phone=f"08123456780{n}")
        fake.add_user(chat)
        await follow(services, chat_of(services, chat, facilitator.id), served)
    quarter = await advance(sandbox, changes=everyone(sandbox))

    first, second = await asyncio.gather(
        run(services, bot_app, quarter), run(services, bot_app, quarter)
    )
    assert first.sent + second.sent == 40
    assert first.digests + second.digests == len(chats)
    for n, chat in enumerate(chats):
        [digest] = texts_to(fake, chat)
        assert all(mask_nik(p.nik) in digest for p in people[n * 5 : n * 5 + 5])
    assert await notice_counts(services, quarter) == {"sent": 40}


async def test_the_digest_speaks_the_facilitator_chats_language(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    served = sandbox.population.sample(2)
    facilitator = await enrol(services, served, FACILITATOR_CHAT)
    fake.add_user(FACILITATOR_CHAT)
    held_by = chat_of(services, FACILITATOR_CHAT, facilitator.id)
    await follow(services, held_by, served)
    now = datetime.now(UTC)
    async with services.database.transaction() as session:
        session.add(
            Conversation(
                channel="telegram",
                address_hash=held_by.address_hash,
                language="en",
                step="menu",
                updated_at=now,
                step_expires_at=now,
            )
        )
    quarter = await advance(sandbox, changes=everyone(sandbox))
    await run(services, bot_app, quarter)
    [digest] = texts_to(fake, FACILITATOR_CHAT)
    assert SCAM_WARNING in digest and translator("id").gettext(SCAM_WARNING) not in digest


async def test_a_facilitator_follows_more_households_than_a_citizen_and_keeps_them_on_renewal(
    services: Services, sandbox: RunningSandbox
) -> None:
    people = sandbox.population.sample(5)
    facilitator = await enrol(services, people, FACILITATOR_CHAT)
    subscriptions = SubscriptionService(
        services.keys, per_address=2, per_facilitator=4, clock=utc_now
    )
    held_by = chat_of(services, FACILITATOR_CHAT, facilitator.id)
    citizen = chat_of(services, CHAT)
    async with services.database.transaction() as session:
        held = [await subscriptions.subscribe(session, held_by, p.nik) for p in people]
        own = [await subscriptions.subscribe(session, citizen, p.nik) for p in people[:3]]
    assert held == [Subscribed(already=False)] * 4 + [TooManySubscriptions(4)]
    assert own == [Subscribed(already=False)] * 2 + [TooManySubscriptions(2)]
    rows = await subscriptions_of(services, held_by)
    assert [row.facilitator_id for row in rows] == [facilitator.id] * 4

    async with services.database.transaction() as session:
        assert (await subscriptions.unsubscribe(session, held_by, rows[0].id)).removed
    async with services.database.transaction() as session:
        renewed = await subscriptions.subscribe(session, held_by, people[0].nik)
        # The same chat, no longer a facilitator's, takes a household over for itself.
        taken_over = await subscriptions.subscribe(
            session, chat_of(services, FACILITATOR_CHAT), people[1].nik
        )
    assert renewed == Subscribed(already=False) and taken_over == Subscribed(already=True)
    rows = await subscriptions_of(services, held_by)
    assert [(row.state, row.facilitator_id) for row in rows] == [
        ("active", facilitator.id),
        ("active", None),
        ("active", facilitator.id),
        ("active", facilitator.id),
    ]


def test_a_long_digest_is_cut_between_households_into_the_fewest_parts() -> None:
    t = translator("en")
    households = [
        DigestHousehold(
            f"3302********{n:04d}",
            QuarterNotice(
                "2027Q1", 3, 5 + n % 3, ("PKH", "BPNT")[: n % 3], ("BLT",) * (n % 2), None
            ),
        )
        for n in range(300)
    ]
    parts = render_quarter_digest("2027Q1", households, t)
    assert len(parts) > 1
    assert sum(part.households for part in parts) == len(households)
    lines = [line for part in parts for line in part.reply.text.splitlines()]
    listed = [line for line in lines if line.startswith("3302****")]
    assert [line[:16] for line in listed] == [h.masked_nik for h in households]  # whole, in order
    told = 0
    for number, part in enumerate(parts, start=1):
        text = part.reply.text
        assert len(text) <= DIGEST_PART_LIMIT
        quarter = quarter_words("2027Q1", t)
        assert text.startswith(f"Update for the {quarter}: 300 of your households changed.")
        assert f"(part {number}/{len(parts)})" in text.splitlines()[0]
        mine = [line for line in text.splitlines() if line.startswith("3302****")]
        assert [line[:16] for line in mine] == [
            h.masked_nik for h in households[told : told + part.households]
        ]
        told += part.households
        assert (SCAM_WARNING in text) == (number == len(parts))
        if number < len(parts):  # full: the next household would not have fitted
            following = parts[number].reply.text.splitlines()[2]
            assert len(text) + 1 + len(following) > DIGEST_PART_LIMIT or (
                told == len(households) - 1
            )

    short = render_quarter_digest("2027Q1", households[:3], t)
    assert len(short) == 1 and short[0].households == 3 and "part" not in short[0].reply.text
    assert render_quarter_digest("2027Q1", [], t) == []
