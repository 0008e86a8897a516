"""Appeal outcomes over the signed webhook, their links to decisions, and the
appeal-overturn report with its Wilson intervals."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.appeals.service import overturn_row, report_days
from shared.models import Appeal, Decision, RejectedBatch, Source
from shared.schemas.appeals import AppealOverturnQuery
from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.problems import assert_problem

Sessionmaker = async_sessionmaker[AsyncSession]
Z = 1.959964


def appeal(event_id: str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": event_id,
        "content_id": "vid-1",
        "outcome": "reversed",
        "decided_at": "2026-12-01T09:00:00Z",
    }
    payload.update(fields)
    return payload


async def post_appeals(sender: SignedSender, payload: Any, **kwargs: Any) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return await sender.client.post(
        "/v1/webhooks/appeals", content=body, headers=sender.headers(body, **kwargs)
    )


async def other_sender(client: httpx.AsyncClient, admin_key: str, name: str) -> SignedSender:
    response = await client.post("/v1/sources", json={"name": name}, headers=auth(admin_key))
    assert response.status_code == 201, response.text
    return SignedSender(client, name, response.json()["secret"])


async def appeals_by_event(sessionmaker: Sessionmaker) -> dict[str, Appeal]:
    async with sessionmaker() as session:
        return {a.event_id: a for a in await session.scalars(select(Appeal))}


async def decision_ids(sessionmaker: Sessionmaker, source: str) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Decision.event_id, Decision.id)
            .join(Source, Source.id == Decision.source_id)
            .where(Source.name == source)
        )
        return {row.event_id: row.id for row in rows}


async def count_appeals(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Appeal)) or 0)


# --- intake -----------------------------------------------------------------------------


async def test_appeals_are_linked_to_the_decision_they_concern(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    decisions = [
        decision_event(1, content_id="vid-1", moderator_id="mod-42"),
        decision_event(2, content_id="vid-2", moderator_id="mod-7", action="approve"),
        decision_event(3, content_id="vid-3", decided_at="2026-11-24T10:00:00Z"),
        decision_event(
            4, content_id="vid-3", moderator_id="mod-9", decided_at="2026-11-24T12:00:00Z"
        ),
    ]
    assert (await sender.post({"events": decisions})).status_code == 202
    # Another platform with the same event ids and contents: never linked to acme's appeals.
    globex = await other_sender(client, admin_key, "globex")
    clash = [
        decision_event(1, content_id="vid-9", moderator_id="mod-globex"),
        decision_event(
            5, content_id="vid-2", moderator_id="mod-globex", decided_at="2026-11-30T00:00:00Z"
        ),
    ]
    assert (await globex.post({"events": clash})).status_code == 202

    response = await post_appeals(
        sender,
        {
            "events": [
                appeal("ap-1", content_id="vid-1", original_event_id="evt-1"),
                appeal("ap-2", content_id="vid-2", outcome="upheld"),
                appeal("ap-3", content_id="vid-3", original_action="restrict"),
                appeal("ap-4", content_id="vid-1", original_event_id="evt-never-sent"),
                appeal("ap-5", content_id="vid-unknown"),
            ]
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 5, "duplicates": 0}
    ids = await decision_ids(sessionmaker, "acme")
    stored = await appeals_by_event(sessionmaker)
    linked = {
        event_id: (a.decision_id, a.moderator_id, a.original_action, a.outcome)
        for event_id, a in stored.items()
    }
    assert linked == {
        "ap-1": (ids["evt-1"], "mod-42", "remove", "reversed"),
        "ap-2": (ids["evt-2"], "mod-7", "approve", "upheld"),
        # No original_event_id: the latest decision on the content; a given action is kept.
        "ap-3": (ids["evt-4"], "mod-9", "restrict", "reversed"),
        # Named a decision never received: left unlinked, not pinned on another one.
        "ap-4": (None, None, None, "reversed"),
        "ap-5": (None, None, None, "reversed"),
    }
    assert stored["ap-1"].original_event_id == "evt-1"
    assert stored["ap-1"].decided_at.isoformat() == "2026-12-01T09:00:00+00:00"

    single = await post_appeals(sender, appeal("ap-6", content_id="vid-2"))
    assert single.json() == {"accepted": 1, "duplicates": 0}
    assert (await appeals_by_event(sessionmaker))["ap-6"].decision_id == ids["evt-2"]


async def test_appeals_are_idempotent_per_source_and_event_id(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str, sessionmaker: Sessionmaker
) -> None:
    assert (await sender.post(decision_event(1))).status_code == 202
    first = await post_appeals(sender, {"events": [appeal("ap-1"), appeal("ap-2")]})
    assert first.json() == {"accepted": 2, "duplicates": 0}
    again = await post_appeals(
        sender, {"events": [appeal("ap-2", outcome="upheld"), appeal("ap-3")]}
    )
    assert again.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 1}
    # The first version of ap-2 stands.
    assert (await appeals_by_event(sessionmaker))["ap-2"].outcome == "reversed"

    payload = {"events": [appeal(f"ap-c{n}") for n in range(30)]}
    responses = await asyncio.gather(*(post_appeals(sender, payload) for _ in range(6)))
    bodies = [r.json() for r in responses]
    assert sum(b["accepted"] for b in bodies) == 30
    assert sum(b["duplicates"] for b in bodies) == 30 * 5

    # The same event id from another source is another appeal.
    globex = await other_sender(client, admin_key, "globex")
    assert (await post_appeals(globex, appeal("ap-1"))).json() == {"accepted": 1, "duplicates": 0}
    assert await count_appeals(sessionmaker) == 3 + 30 + 1


@pytest.mark.parametrize(
    "mutate", ["no-signature", "no-source", "unknown-source", "wrong-secret", "stale", "tampered"]
)
async def test_bad_signatures_are_401_and_store_nothing(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker, mutate: str
) -> None:
    body = orjson.dumps(appeal("ap-1"))
    headers = sender.headers(body)
    if mutate == "no-signature":
        del headers["X-Plumbline-Signature"]
    elif mutate == "no-source":
        del headers["X-Plumbline-Source"]
    elif mutate == "unknown-source":
        headers["X-Plumbline-Source"] = "nobody"
    elif mutate == "wrong-secret":
        headers = SignedSender(client, "acme", "whsec_wrong").headers(body)
    elif mutate == "stale":
        headers = sender.headers(body, timestamp=int(time.time()) - 301)
    elif mutate == "tampered":
        body = orjson.dumps(appeal("ap-1", outcome="upheld"))
    response = await client.post("/v1/webhooks/appeals", content=body, headers=headers)
    assert_problem(response, 401)
    assert await count_appeals(sessionmaker) == 0


async def test_bad_bodies_are_refused_and_store_nothing(
    sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    assert_problem(await post_appeals(sender, b"{not json"), 400)
    too_big = orjson.dumps({"events": [appeal("ap-1", content_id="x" * 200)] * 6000})
    assert len(too_big) > 1024 * 1024
    assert_problem(await post_appeals(sender, too_big), 413)
    assert_problem(await post_appeals(sender, {"events": []}), 422)
    too_many = {"events": [appeal(f"ap-{n}") for n in range(1001)]}
    assert_problem(await post_appeals(sender, too_many), 422)

    invalid = {"events": [appeal("ap-0"), appeal("ap-1"), appeal("ap-2", outcome="overturned")]}
    body = assert_problem(await post_appeals(sender, invalid), 422)
    assert body["detail"].startswith("event 2 is invalid")
    assert body["errors"][0]["loc"] == ["events", 2, "outcome"]
    naive = {"events": [appeal("ap-0"), appeal("ap-1", decided_at="2026-12-01T09:00:00")]}
    assert assert_problem(await post_appeals(sender, naive), 422)["detail"].startswith("event 1")
    repeated = {"events": [appeal("ap-0"), appeal("ap-1"), appeal("ap-0")]}
    assert "event 2 repeats" in assert_problem(await post_appeals(sender, repeated), 422)["detail"]
    unknown_field = appeal("ap-0", moderator_id="mod-1")
    assert_problem(await post_appeals(sender, unknown_field), 422)
    bad_action = appeal("ap-0", original_action="delete")
    assert_problem(await post_appeals(sender, bad_action), 422)
    assert_problem(await post_appeals(sender, [appeal("ap-0")]), 422)

    assert await count_appeals(sessionmaker) == 0
    # Refused (but authentic) requests are kept for the source's owners, as for decisions.
    async with sessionmaker() as session:
        reasons = list(await session.scalars(select(RejectedBatch.reason)))
    assert any("event 2 is invalid" in reason for reason in reasons)


# --- the overturn report ------------------------------------------------------------------


def newcombe_wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson's score interval in Newcombe's (1998) closed form, method 3: independent of
    the service's algebra."""
    p, q = successes / trials, 1 - successes / trials
    root = Z * math.sqrt(Z * Z + 4 * trials * p * q)
    denominator = 2 * (trials + Z * Z)
    return (
        (2 * trials * p + Z * Z - root) / denominator,
        (2 * trials * p + Z * Z + root) / denominator,
    )


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    # Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion:
    # comparison of seven methods. Statistics in Medicine 17, 857-872, Table I, method 3.
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_overturn_rows_carry_the_wilson_interval(
    successes: int, trials: int, low: float, high: float
) -> None:
    row = overturn_row("mod-1", appealed=trials, reversed_=successes)
    assert row.rate == successes / trials
    assert round(row.ci_low, 4) == low
    assert round(row.ci_high, 4) == high


async def overturn_fixture(sender: SignedSender) -> None:
    """mod-42 (DE video): 15 of 148 appealed decisions reversed on 2026-11-24, plus one
    reversed on 2026-11-20; mod-7 (AT video): 1 of 29; mod-9 (DE text): 0 of 20, decided at
    23:30 UTC on the 23rd, which is the 24th in Berlin."""
    decisions = [decision_event(n, event_id=f"d42-{n}", content_id=f"c42-{n}") for n in range(148)]
    decisions.append(
        decision_event(
            0, event_id="d42-old", content_id="c42-old", decided_at="2026-11-20T10:00:00Z"
        )
    )
    decisions += [
        decision_event(
            n,
            event_id=f"d7-{n}",
            content_id=f"c7-{n}",
            moderator_id="mod-7",
            market="AT",
            queue="at-video",
        )
        for n in range(29)
    ]
    decisions += [
        decision_event(
            n,
            event_id=f"d9-{n}",
            content_id=f"c9-{n}",
            moderator_id="mod-9",
            queue="de-text",
            decided_at="2026-11-23T23:30:00Z",
        )
        for n in range(20)
    ]
    assert (await sender.post({"events": decisions})).status_code == 202
    appeals = [
        appeal(f"a42-{n}", content_id=f"c42-{n}", outcome="reversed" if n < 15 else "upheld")
        for n in range(148)
    ]
    # Appealed twice: a decision still counts once (reversed if any appeal reversed it).
    appeals += [
        appeal("a42-again-0", content_id="c42-0", original_event_id="d42-0", outcome="upheld"),
        appeal(
            "a42-again-100", content_id="c42-100", original_event_id="d42-100", outcome="upheld"
        ),
        appeal("a42-old", content_id="c42-old"),
        appeal("a-unlinked", content_id="never-decided"),
    ]
    appeals += [
        appeal(f"a7-{n}", content_id=f"c7-{n}", outcome="reversed" if n == 0 else "upheld")
        for n in range(29)
    ]
    appeals += [appeal(f"a9-{n}", content_id=f"c9-{n}", outcome="upheld") for n in range(20)]
    response = await post_appeals(sender, {"events": appeals})
    assert response.json() == {"accepted": len(appeals), "duplicates": 0}


def rows_of(response: httpx.Response) -> dict[str, tuple[int, int]]:
    assert response.status_code == 200, response.text
    return {row["key"]: (row["appealed"], row["reversed"]) for row in response.json()["rows"]}


REPORT = "/v1/reports/appeal-overturns"
DAY = "from=2026-11-24&to=2026-11-24"


async def test_overturn_report_counts_and_intervals(
    sender: SignedSender, client: httpx.AsyncClient, admin_key: str
) -> None:
    await overturn_fixture(sender)
    admin = auth(admin_key)

    response = await client.get(f"{REPORT}?group_by=moderator&{DAY}", headers=admin)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert [row["key"] for row in rows] == ["mod-42", "mod-7", "mod-9"]
    expected = {"mod-42": (148, 15), "mod-7": (29, 1), "mod-9": (20, 0)}
    for row in rows:
        appealed, reversed_ = expected[row["key"]]
        assert (row["appealed"], row["reversed"]) == (appealed, reversed_)
        assert row["rate"] == pytest.approx(reversed_ / appealed)
        low, high = newcombe_wilson(reversed_, appealed)
        assert row["ci_low"] == pytest.approx(low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(high, abs=1e-12)
        assert set(row) == {"key", "appealed", "reversed", "rate", "ci_low", "ci_high"}
    # The published bounds of Newcombe (1998) for 15/148 and 1/29.
    assert (round(rows[0]["ci_low"], 4), round(rows[0]["ci_high"], 4)) == (0.0624, 0.1605)
    assert (round(rows[1]["ci_low"], 4), round(rows[1]["ci_high"], 4)) == (0.0061, 0.1718)

    by_queue = await client.get(f"{REPORT}?group_by=queue&{DAY}", headers=admin)
    assert rows_of(by_queue) == {
        "at-video": (29, 1),
        "de-text": (20, 0),
        "de-video-standard": (148, 15),
    }
    by_market = await client.get(f"{REPORT}?group_by=market&{DAY}", headers=admin)
    assert rows_of(by_market) == {"AT": (29, 1), "DE": (168, 15)}
    [de] = [row for row in by_market.json()["rows"] if row["key"] == "DE"]
    assert (de["ci_low"], de["ci_high"]) == pytest.approx(newcombe_wilson(15, 168), abs=1e-12)

    wider = await client.get(
        f"{REPORT}?group_by=moderator&from=2026-11-20&to=2026-11-24", headers=admin
    )
    assert rows_of(wider)["mod-42"] == (149, 16)
    filtered = await client.get(
        f"{REPORT}?group_by=queue&{DAY}&market=de&moderator_id=mod-42", headers=admin
    )
    assert rows_of(filtered) == {"de-video-standard": (148, 15)}
    nothing = await client.get(
        f"{REPORT}?group_by=market&from=2026-11-25&to=2026-11-30", headers=admin
    )
    assert rows_of(nothing) == {}


async def test_overturn_report_roles_and_scopes(
    sender: SignedSender, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    await overturn_fixture(sender)
    for role in ("admin", "manager", "policy_poc"):
        key = auth(await make_key(sessionmaker, role))
        assert set(
            rows_of(await client.get(f"{REPORT}?group_by=moderator&{DAY}", headers=key))
        ) == {
            "mod-42",
            "mod-7",
            "mod-9",
        }
    moderator = auth(await make_key(sessionmaker, "moderator", reviewer_id="mod-7"))
    own = await client.get(f"{REPORT}?group_by=moderator&{DAY}", headers=moderator)
    assert rows_of(own) == {"mod-7": (29, 1)}
    own_by_queue = await client.get(
        f"{REPORT}?group_by=queue&{DAY}&moderator_id=mod-7", headers=moderator
    )
    assert rows_of(own_by_queue) == {"at-video": (29, 1)}
    others = await client.get(
        f"{REPORT}?group_by=moderator&{DAY}&moderator_id=mod-42", headers=moderator
    )
    assert_problem(others, 403)

    austria = auth(await make_key(sessionmaker, "manager", markets=["AT"]))
    assert rows_of(await client.get(f"{REPORT}?group_by=market&{DAY}", headers=austria)) == {
        "AT": (29, 1)
    }
    assert_problem(
        await client.get(f"{REPORT}?group_by=market&{DAY}&market=DE", headers=austria), 403
    )

    auditor = auth(await make_key(sessionmaker, "qa_auditor", reviewer_id="aud-1"))
    assert_problem(await client.get(f"{REPORT}?group_by=moderator", headers=auditor), 403)
    assert_problem(await client.get(f"{REPORT}?group_by=moderator"), 401)

    manager = auth(await make_key(sessionmaker, "manager"))
    for bad in (
        "group_by=policy",
        "",
        "group_by=queue&from=2026-11-25&to=2026-11-24",
        "group_by=queue&from=yesterday",
        "group_by=queue&format=csv",
    ):
        assert_problem(await client.get(f"{REPORT}?{bad}", headers=manager), 422)
    default = await client.get(f"{REPORT}?group_by=market", headers=manager)
    assert default.status_code == 200


def test_the_report_window_defaults_to_the_30_days_ending_today() -> None:
    today = date(2026, 12, 10)
    assert report_days(AppealOverturnQuery(group_by="queue"), today=today) == (
        date(2026, 11, 11),
        today,
    )
    only_to = AppealOverturnQuery.model_validate({"group_by": "queue", "to": "2026-11-30"})
    assert report_days(only_to, today=today) == (date(2026, 11, 1), date(2026, 11, 30))
