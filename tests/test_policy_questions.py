"""Policy questions: asked and routed to the market's policy POCs, seen by whom they concern,
answered once, announced overdue once past the SLA, and promoted into a draft policy update."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.report_worker.policy_questions import run_announce_overdue_policy_questions
from shared.core.db import unit_of_work
from shared.core.settings import Settings
from shared.events import EventType
from shared.models import ApiKey, AuditLogEntry, Event, PolicyQuestion, PolicyUpdate
from shared.policy_questions.overdue import announce_overdue_questions
from tests.conftest import auth, make_key
from tests.support.problems import assert_problem
from tests.support.workers import worker_state

Sessionmaker = async_sessionmaker[AsyncSession]

QUESTION = "Does a slur quoted in a news report count as hate speech?"
ANSWER = "Only when it endorses the slur."


async def ask(
    client: httpx.AsyncClient, key: str, *, market: str = "DE", **overrides: Any
) -> dict[str, Any]:
    body = {"policy_code": "hate_speech", "market": market, "question": QUESTION, **overrides}
    response = await client.post("/v1/policy-questions", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def events_of(sessionmaker: Sessionmaker, type: EventType) -> list[Event]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(Event).where(Event.type == type.value).order_by(Event.occurred_at)
            )
        )


async def audit_actions(sessionmaker: Sessionmaker, entity_id: str) -> list[str]:
    async with sessionmaker() as session:
        return list(
            await session.scalars(
                select(AuditLogEntry.action)
                .where(AuditLogEntry.entity_id == entity_id)
                .order_by(AuditLogEntry.id)
            )
        )


@pytest.fixture
async def poc_de(sessionmaker: Sessionmaker) -> str:
    return await make_key(sessionmaker, "policy_poc", reviewer_id="poc-de", markets=["DE"])


@pytest.fixture
async def moderator(sessionmaker: Sessionmaker) -> str:
    return await make_key(sessionmaker, "moderator", reviewer_id="mod-1", markets=["DE"])


# ------------------------------------------------------------------------------- asking


async def test_a_question_is_routed_to_the_markets_policy_pocs(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    poc_de: str,
    moderator: str,
) -> None:
    await make_key(sessionmaker, "policy_poc", reviewer_id="poc-all")
    await make_key(sessionmaker, "policy_poc", reviewer_id="poc-at", markets=["AT"])
    await make_key(sessionmaker, "policy_poc", reviewer_id="poc-gone", markets=["DE"])
    await make_key(sessionmaker, "policy_poc", markets=["DE"])  # bound to no reviewer
    await make_key(sessionmaker, "manager", reviewer_id="lead-de", markets=["DE"])
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ApiKey).where(ApiKey.reviewer_id == "poc-gone").values(revoked_at=func.now())
        )

    asked = await ask(client, moderator, market="de", question="  " + QUESTION + "\n")
    assert asked["question"] == QUESTION
    assert (asked["market"], asked["policy_code"], asked["asked_by"]) == (
        "DE",
        "hate_speech",
        "mod-1",
    )
    assert asked["status"] == "open"
    assert asked["answer"] is None
    asked_at = datetime.fromisoformat(asked["asked_at"])
    due = datetime.fromisoformat(asked["answer_due_at"])
    assert due - asked_at == timedelta(hours=settings.policy_question_sla_hours)

    [event] = await events_of(sessionmaker, EventType.POLICY_QUESTION_ASKED)
    assert event.market == "DE"
    assert event.recipients == ["poc-all", "poc-de"]
    assert event.data["id"] == asked["id"]
    assert event.data["asked_by"] == "mod-1"
    assert datetime.fromisoformat(event.data["answer_due_at"]) == due
    assert await audit_actions(sessionmaker, asked["id"]) == ["policy_question.asked"]


async def test_a_key_bound_to_no_reviewer_asks_under_its_name(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    key = await make_key(sessionmaker, "qa_auditor")
    asked = await ask(client, key)
    assert asked["asked_by"] == "qa_auditor test key"
    mine = await client.get("/v1/policy-questions", headers=auth(key))
    assert [q["id"] for q in mine.json()["items"]] == [asked["id"]]


async def test_every_role_may_ask_and_a_scoped_key_only_in_its_markets(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    for role in ("moderator", "qa_auditor", "policy_poc", "manager", "admin"):
        key = await make_key(sessionmaker, role, reviewer_id=f"{role}-1", markets=["AT"])
        await ask(client, key, market="AT")
        outside = await client.post(
            "/v1/policy-questions",
            json={"policy_code": "hate_speech", "market": "DE", "question": QUESTION},
            headers=auth(key),
        )
        assert_problem(outside, 403)
    assert len(await events_of(sessionmaker, EventType.POLICY_QUESTION_ASKED)) == 5
    unauthenticated = await client.post(
        "/v1/policy-questions",
        json={"policy_code": "hate_speech", "market": "DE", "question": QUESTION},
    )
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"question": ""},
        {"question": "   \n\t "},
        {"question": "x" * 4001},
        {"market": "Germany"},
        {"market": "XX"},
        {"market": "D1"},
        {"market": None},
        {"policy_code": "Hate Speech"},
        {"policy_code": ""},
        {"policy_code": "p" * 65},
        {"colour": "blue"},
        {"question": ["a list"]},
    ],
)
async def test_bad_questions_are_422(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    moderator: str,
    overrides: dict[str, Any],
) -> None:
    body = {"policy_code": "hate_speech", "market": "DE", "question": QUESTION, **overrides}
    response = await client.post("/v1/policy-questions", json=body, headers=auth(moderator))
    assert_problem(response, 422)
    assert await events_of(sessionmaker, EventType.POLICY_QUESTION_ASKED) == []


async def test_the_longest_question_is_accepted_and_a_nul_refused(
    client: httpx.AsyncClient, moderator: str
) -> None:
    await ask(client, moderator, question="y" * 4000)
    nul = await client.post(
        "/v1/policy-questions",
        json={"policy_code": "hate_speech", "market": "DE", "question": "a\x00b"},
        headers=auth(moderator),
    )
    assert 400 <= nul.status_code < 500


# ----------------------------------------------------------------------------- answering


async def test_an_answer_is_given_once_and_the_asker_told(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    asked = await ask(client, moderator)
    url = f"/v1/policy-questions/{asked['id']}/answer"
    answered = await client.post(
        url, json={"answer": " Yes, unless it is reported critically. "}, headers=auth(poc_de)
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert (body["status"], body["answer"], body["answered_by"]) == (
        "answered",
        "Yes, unless it is reported critically.",
        "poc-de",
    )
    [event] = await events_of(sessionmaker, EventType.POLICY_QUESTION_ANSWERED)
    assert event.market == "DE"
    assert event.recipients == ["mod-1"]
    assert event.data["answer"] == "Yes, unless it is reported critically."
    assert event.data["answered_by"] == "poc-de"

    again = await client.post(url, json={"answer": "No."}, headers=auth(poc_de))
    assert_problem(again, 409)
    fetched = await client.get(f"/v1/policy-questions/{asked['id']}", headers=auth(moderator))
    assert fetched.json()["answer"] == "Yes, unless it is reported critically."
    assert len(await events_of(sessionmaker, EventType.POLICY_QUESTION_ANSWERED)) == 1
    assert await audit_actions(sessionmaker, asked["id"]) == [
        "policy_question.asked",
        "policy_question.answered",
    ]


async def test_two_concurrent_answers_one_wins_the_other_is_409(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    admin = await make_key(sessionmaker, "admin", reviewer_id="admin-1")
    for _ in range(3):
        asked = await ask(client, moderator)
        url = f"/v1/policy-questions/{asked['id']}/answer"
        responses = await asyncio.gather(
            client.post(url, json={"answer": "From the POC."}, headers=auth(poc_de)),
            client.post(url, json={"answer": "From the admin."}, headers=auth(admin)),
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        winner = next(r for r in responses if r.status_code == 200).json()
        stored = await client.get(f"/v1/policy-questions/{asked['id']}", headers=auth(poc_de))
        assert stored.json()["answer"] == winner["answer"]
    assert len(await events_of(sessionmaker, EventType.POLICY_QUESTION_ANSWERED)) == 3


@pytest.mark.parametrize(
    ("role", "markets", "status"),
    [
        ("moderator", None, 403),
        ("qa_auditor", None, 403),
        ("manager", None, 403),
        ("policy_poc", ["AT"], 404),
        ("admin", ["AT"], 404),
        ("admin", None, 200),
    ],
)
async def test_who_may_answer(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    moderator: str,
    role: str,
    markets: list[str] | None,
    status: int,
) -> None:
    asked = await ask(client, moderator)
    key = await make_key(sessionmaker, role, reviewer_id=f"{role}-x", markets=markets)
    response = await client.post(
        f"/v1/policy-questions/{asked['id']}/answer", json={"answer": "A."}, headers=auth(key)
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize("body", [{"answer": ""}, {"answer": "  "}, {}, {"answer": "a" * 20_001}])
async def test_bad_answers_are_422_and_unknown_questions_404(
    client: httpx.AsyncClient, poc_de: str, moderator: str, body: dict[str, Any]
) -> None:
    asked = await ask(client, moderator)
    bad = await client.post(
        f"/v1/policy-questions/{asked['id']}/answer", json=body, headers=auth(poc_de)
    )
    assert_problem(bad, 422)
    unknown = await client.post(
        f"/v1/policy-questions/{uuid.uuid4()}/answer", json={"answer": "A."}, headers=auth(poc_de)
    )
    assert_problem(unknown, 404)
    malformed = await client.post(
        "/v1/policy-questions/not-a-uuid/answer", json={"answer": "A."}, headers=auth(poc_de)
    )
    assert_problem(malformed, 422)


# ------------------------------------------------------------------------------- reading


async def test_who_sees_which_questions_and_the_filters(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    other = await make_key(sessionmaker, "moderator", reviewer_id="mod-2", markets=["DE"])
    at_mod = await make_key(sessionmaker, "moderator", reviewer_id="mod-3", markets=["AT"])
    poc_at = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-at", markets=["AT"])
    admin = await make_key(sessionmaker, "admin")
    manager_de = await make_key(sessionmaker, "manager", markets=["DE"])
    first = await ask(client, moderator)
    second = await ask(client, moderator, policy_code="violence")
    others = await ask(client, other)
    austrian = await ask(client, at_mod, market="AT")
    await client.post(
        f"/v1/policy-questions/{first['id']}/answer", json={"answer": "A."}, headers=auth(poc_de)
    )

    async def ids(key: str, **params: Any) -> list[str]:
        response = await client.get("/v1/policy-questions", params=params, headers=auth(key))
        assert response.status_code == 200, response.text
        return [q["id"] for q in response.json()["items"]]

    # Newest first.
    assert await ids(moderator) == [second["id"], first["id"]]
    assert await ids(other) == [others["id"]]
    assert await ids(poc_de) == [others["id"], second["id"], first["id"]]
    assert await ids(manager_de) == [others["id"], second["id"], first["id"]]
    assert await ids(poc_at) == [austrian["id"]]
    assert await ids(admin) == [austrian["id"], others["id"], second["id"], first["id"]]
    assert await ids(admin, market="at") == [austrian["id"]]
    assert await ids(admin, policy_code="violence") == [second["id"]]
    assert await ids(admin, status="answered") == [first["id"]]
    assert await ids(admin, status="open") == [austrian["id"], others["id"], second["id"]]
    assert await ids(poc_de, asked_by="mod-1", status="open") == [second["id"]]
    assert await ids(moderator, asked_by="mod-1") == [second["id"], first["id"]]

    page = await client.get("/v1/policy-questions?limit=3", headers=auth(admin))
    rest = await client.get(
        "/v1/policy-questions", params={"cursor": page.json()["next_cursor"]}, headers=auth(admin)
    )
    assert [q["id"] for q in rest.json()["items"]] == [first["id"]]
    assert rest.json()["next_cursor"] is None

    forbidden = [
        (moderator, {"asked_by": "mod-2"}),
        (poc_de, {"market": "AT"}),
    ]
    for key, params in forbidden:
        response = await client.get("/v1/policy-questions", params=params, headers=auth(key))
        assert_problem(response, 403)
    for params in ({"status": "closed"}, {"market": "XX"}, {"cursor": "bogus"}, {"x": "1"}):
        response = await client.get("/v1/policy-questions", params=params, headers=auth(admin))
        assert 400 <= response.status_code < 500, params

    single = f"/v1/policy-questions/{first['id']}"
    assert (await client.get(single, headers=auth(moderator))).status_code == 200
    assert (await client.get(single, headers=auth(poc_de))).status_code == 200
    assert_problem(await client.get(single, headers=auth(other)), 403)
    assert_problem(await client.get(single, headers=auth(poc_at)), 404)
    unknown = await client.get(f"/v1/policy-questions/{uuid.uuid4()}", headers=auth(admin))
    assert_problem(unknown, 404)


# ------------------------------------------------------------------------------- overdue


async def _ask_at(
    sessionmaker: Sessionmaker, client: httpx.AsyncClient, key: str, *, asked_at: datetime
) -> str:
    """Ask through the API, then move the question's asking time to ``asked_at``."""
    asked = await ask(client, key)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(PolicyQuestion)
            .where(PolicyQuestion.id == uuid.UUID(asked["id"]))
            .values(created_at=asked_at)
        )
    return str(asked["id"])


async def test_an_unanswered_question_past_the_sla_is_announced_once(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    poc_de: str,
    moderator: str,
) -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    sla = 24
    late = await _ask_at(sessionmaker, client, moderator, asked_at=now - timedelta(hours=25))
    answered = await _ask_at(sessionmaker, client, moderator, asked_at=now - timedelta(hours=30))
    await client.post(
        f"/v1/policy-questions/{answered}/answer", json={"answer": "A."}, headers=auth(poc_de)
    )
    fresh = await _ask_at(sessionmaker, client, moderator, asked_at=now - timedelta(hours=23))

    async def announce(at: datetime) -> int:
        async with unit_of_work(sessionmaker) as session:
            return await announce_overdue_questions(session, now=at, sla_hours=sla)

    assert await announce(now) == 1
    assert await announce(now) == 0
    [event] = await events_of(sessionmaker, EventType.POLICY_QUESTION_OVERDUE)
    assert event.data["id"] == late
    assert event.data["sla_hours"] == sla
    assert event.market == "DE"
    assert event.recipients == ["poc-de"]
    # An hour later the fresh one is overdue too; the late one is not announced again.
    assert await announce(now + timedelta(hours=1)) == 1
    events = await events_of(sessionmaker, EventType.POLICY_QUESTION_OVERDUE)
    assert sorted(e.data["id"] for e in events) == sorted([late, fresh])
    question = await client.get(f"/v1/policy-questions/{late}", headers=auth(poc_de))
    assert question.json()["overdue_notified_at"] is not None


async def test_two_concurrent_overdue_runs_announce_each_question_once(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, moderator: str
) -> None:
    asked_at = datetime.now(UTC) - timedelta(hours=settings.policy_question_sla_hours + 1)
    ids = [
        await _ask_at(sessionmaker, client, moderator, asked_at=asked_at + timedelta(seconds=n))
        for n in range(6)
    ]
    state = worker_state(settings, sessionmaker)
    try:
        counts = await asyncio.gather(
            run_announce_overdue_policy_questions(state),
            run_announce_overdue_policy_questions(state),
        )
        assert sum(counts) == len(ids)
        assert await run_announce_overdue_policy_questions(state) == 0
    finally:
        await state.redis.aclose()
    events = await events_of(sessionmaker, EventType.POLICY_QUESTION_OVERDUE)
    assert sorted(e.data["id"] for e in events) == sorted(ids)


# ----------------------------------------------------------------------------- promotion


async def _draft(
    sessionmaker: Sessionmaker,
    *,
    markets: list[str],
    policy_codes: list[str],
    status: str = "draft",
    language: str = "de",
    created_at: datetime | None = None,
) -> uuid.UUID:
    update_id = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        session.add(
            PolicyUpdate(
                id=update_id,
                status=status,
                language=language,
                texts={
                    "de": {"title": "Hassrede", "summary": "Neu", "body": "Originaltext."},
                    "en": {"title": "Hate speech", "summary": "New", "body": "Original text."},
                },
                policy_codes=policy_codes,
                markets=markets,
                effective_at=datetime.now(UTC) + timedelta(days=7),
                created_by="poc-de",
                created_at=created_at or datetime.now(UTC),
            )
        )
    return update_id


async def _answered(client: httpx.AsyncClient, asker: str, poc: str, **overrides: Any) -> str:
    asked = await ask(client, asker, **overrides)
    response = await client.post(
        f"/v1/policy-questions/{asked['id']}/answer",
        json={"answer": ANSWER},
        headers=auth(poc),
    )
    assert response.status_code == 200, response.text
    return str(asked["id"])


async def _update(sessionmaker: Sessionmaker, update_id: uuid.UUID | str) -> PolicyUpdate:
    async with sessionmaker() as session:
        found = await session.get(PolicyUpdate, uuid.UUID(str(update_id)))
        assert found is not None
        return found


async def test_an_answer_is_promoted_into_a_new_draft_when_there_is_none(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    # Drafts that do not fit: another market, another policy code, published.
    await _draft(sessionmaker, markets=["AT"], policy_codes=["hate_speech"])
    await _draft(sessionmaker, markets=["DE"], policy_codes=["violence"])
    await _draft(sessionmaker, markets=["DE"], policy_codes=["hate_speech"], status="published")
    question_id = await _answered(client, moderator, poc_de)
    url = f"/v1/policy-questions/{question_id}/promote"

    promoted = await client.post(url, json={}, headers=auth(poc_de))
    assert promoted.status_code == 200, promoted.text
    draft = await _update(sessionmaker, promoted.json()["promoted_to_update_id"])
    assert draft.status == "draft"
    assert (draft.markets, draft.policy_codes) == (["DE"], ["hate_speech"])
    assert draft.texts[draft.language]["title"] == "Clarification: hate_speech"
    assert draft.texts[draft.language]["body"] == f"Q: {QUESTION}\nA: {ANSWER}"
    assert draft.created_by == "poc-de"

    assert_problem(await client.post(url, json={}, headers=auth(poc_de)), 409)
    assert await audit_actions(sessionmaker, question_id) == [
        "policy_question.asked",
        "policy_question.answered",
        "policy_question.promoted",
    ]
    assert await audit_actions(sessionmaker, str(draft.id)) == ["policy_update.created"]


async def test_an_answer_is_appended_to_the_latest_draft_of_its_market_and_code(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    now = datetime.now(UTC)
    older = await _draft(
        sessionmaker,
        markets=["DE", "AT"],
        policy_codes=["hate_speech"],
        created_at=now - timedelta(days=2),
    )
    latest = await _draft(
        sessionmaker,
        markets=["AT", "DE"],
        policy_codes=["spam", "hate_speech"],
        created_at=now - timedelta(days=1),
    )
    question_id = await _answered(client, moderator, poc_de)
    # No body at all is the same as {}.
    promoted = await client.post(
        f"/v1/policy-questions/{question_id}/promote", headers=auth(poc_de)
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["promoted_to_update_id"] == str(latest)

    draft = await _update(sessionmaker, latest)
    # Appended to the original language's body; the translation is left as it was.
    assert draft.texts["de"]["body"] == (f"Originaltext.\n\nQ: {QUESTION}\nA: {ANSWER}")
    assert draft.texts["en"]["body"] == "Original text."
    assert draft.policy_codes == ["spam", "hate_speech"]
    untouched = await _update(sessionmaker, older)
    assert untouched.texts["de"]["body"] == "Originaltext."
    assert await audit_actions(sessionmaker, str(latest)) == ["policy_update.updated"]


async def test_promotion_into_a_named_draft_and_its_refusals(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, poc_de: str, moderator: str
) -> None:
    named = await _draft(sessionmaker, markets=["DE"], policy_codes=["violence"], language="en")
    published = await _draft(
        sessionmaker, markets=["DE"], policy_codes=["hate_speech"], status="published"
    )
    austrian = await _draft(sessionmaker, markets=["AT"], policy_codes=["hate_speech"])

    unanswered = await ask(client, moderator)
    refused = await client.post(
        f"/v1/policy-questions/{unanswered['id']}/promote",
        json={"policy_update_id": str(named)},
        headers=auth(poc_de),
    )
    assert_problem(refused, 409)

    question_id = await _answered(client, moderator, poc_de)
    url = f"/v1/policy-questions/{question_id}/promote"
    cases = [
        (published, 409),
        (austrian, 422),
        (uuid.uuid4(), 404),
    ]
    for update_id, status in cases:
        response = await client.post(
            url, json={"policy_update_id": str(update_id)}, headers=auth(poc_de)
        )
        assert_problem(response, status)
    assert_problem(
        await client.post(url, json={"policy_update_id": "nope"}, headers=auth(poc_de)), 422
    )
    assert_problem(await client.post(url, json={"policy_update_id": str(named)}), 401)
    assert_problem(
        await client.post(url, json={"policy_update_id": str(named)}, headers=auth(moderator)),
        403,
    )

    promoted = await client.post(url, json={"policy_update_id": str(named)}, headers=auth(poc_de))
    assert promoted.status_code == 200, promoted.text
    draft = await _update(sessionmaker, named)
    assert draft.policy_codes == ["violence", "hate_speech"]
    assert draft.texts["en"]["body"].endswith(f"Q: {QUESTION}\nA: {ANSWER}")
    assert draft.texts["de"]["body"] == "Originaltext."
    for update_id in (published, austrian):
        unchanged = await _update(sessionmaker, update_id)
        assert unchanged.texts["de"]["body"] == "Originaltext."
