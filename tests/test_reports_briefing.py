"""GET /v1/reports/briefing: every section from the report functions, as JSON, PPTX and XLSX.

Decisions arrive over the signed webhook and are judged over the API (tests/support/analytics);
the briefing's numbers must be the ones the trend, comparison, errors, population-accuracy and
rates reports answer for the same window.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
from pptx import Presentation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.analytics.briefing_pptx import PPTX_MEDIA_TYPE
from tests.conftest import SignedSender, auth, make_key
from tests.support.analytics import Judged, incorrect, seed_judged
from tests.support.calibrations import create_calibration, label
from tests.support.problems import assert_problem
from tests.support.quizzes import ALL_RIGHT, attempt, create_quiz, reviewer_key

REPORT = "/v1/reports/briefing"
WINDOW = {"from": "2026-11-02", "to": "2026-11-15"}

Sessionmaker = async_sessionmaker[AsyncSession]


def _on(day: str, moderator: str, market: str) -> dict[str, Any]:
    return {"moderator_id": moderator, "decided_at": f"{day}T10:00:00Z", "market": market}


# DE: mod-a, 4 audits on 11-03, 3 correct (one critical error); FR: mod-b, 2 audits on 11-10,
# both correct, and one decision never audited.
CASES = [
    *[Judged(_on("2026-11-03", "mod-a", "DE")) for _ in range(3)],
    Judged(_on("2026-11-03", "mod-a", "DE"), incorrect("approve", "critical")),
    *[Judged(_on("2026-11-10", "mod-b", "FR")) for _ in range(2)],
    Judged(_on("2026-11-10", "mod-b", "FR"), verdict=None),
]


@pytest.fixture
async def judged(
    client: httpx.AsyncClient, sender: SignedSender, sessionmaker: Sessionmaker
) -> None:
    await seed_judged(client, sender, sessionmaker, CASES)


async def _get(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get(REPORT, params={**WINDOW, **params}, headers=auth(key))


async def test_briefing_sections_agree_with_the_reports(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    """By hand: 7 decisions, 6 audited, 5 correct (5/6 = 0.833333); DE 3/4, FR 2/2. The
    quality score over all: 1 - 5 * 1 / (5 * 6) = 0.833333 (one critical error, weight 5)."""
    lead = await make_key(sessionmaker, "manager")
    response = await _get(client, lead)
    assert response.status_code == 200, response.text
    body = response.json()
    head = body["headline"]
    assert (head["decisions"], head["audited"], head["correct"]) == (7, 6, 5)
    assert head["accuracy"] == pytest.approx(5 / 6)
    assert head["quality_score"] == pytest.approx(1 - 5 / 30)
    assert head["small_sample"] is True
    assert body["dimension"] == "market"
    assert {row["key"]: row["audited"] for row in body["comparison"]["rows"]} == {"DE": 4, "FR": 2}
    trend = (
        await client.get(
            "/v1/reports/trend", params={**WINDOW, "interval": "week"}, headers=auth(lead)
        )
    ).json()
    assert body["trend"]["rows"] == trend["rows"]
    errors = (
        await client.get(
            "/v1/reports/errors", params={**WINDOW, "group_by": "market"}, headers=auth(lead)
        )
    ).json()
    assert body["errors"]["rows"] == errors["rows"]
    comparison = (
        await client.get(
            "/v1/reports/comparison", params={**WINDOW, "dimension": "market"}, headers=auth(lead)
        )
    ).json()
    assert body["comparison"]["rows"] == comparison["rows"]
    (rates,) = (await client.get("/v1/reports/rates", params=WINDOW, headers=auth(lead))).json()[
        "rows"
    ]
    for name in ("dispute_rate", "dispute_rate_ci_low", "overturn_rate", "overturn_rate_ci_high"):
        assert head[name] == rates[name], name
    assert body["escalations"] == {"rows": [], "note": None}
    assert body["calibrations"] == []
    assert body["quizzes"] == []
    assert body["training"] == []

    # Within one market the comparison is of its queues.
    one_market = (await _get(client, lead, market="DE")).json()
    assert one_market["dimension"] == "queue"
    assert one_market["headline"]["audited"] == 4


async def test_a_moderator_key_gets_its_own_briefing(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    own = await make_key(sessionmaker, "moderator", reviewer_id="mod-b")
    body = (await _get(client, own)).json()
    assert (body["headline"]["audited"], body["headline"]["correct"]) == (2, 2)
    assert [row["key"] for row in body["comparison"]["rows"]] == ["FR"]


async def test_briefing_files_are_a_deck_and_a_workbook(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, judged: None
) -> None:
    lead = await make_key(sessionmaker, "manager")
    deck = await _get(client, lead, format="pptx", lang="de")
    assert deck.status_code == 200, deck.text
    assert deck.headers["content-type"] == PPTX_MEDIA_TYPE
    assert (
        'filename="briefing-2026-11-02-to-2026-11-15.pptx"' in deck.headers["content-disposition"]
    )
    slides = Presentation(io.BytesIO(deck.content)).slides
    assert len(slides) == 8
    book = await _get(client, lead, format="xlsx", lang="de")
    assert book.status_code == 200, book.text
    workbook = openpyxl.load_workbook(io.BytesIO(book.content))
    assert workbook.sheetnames[0] == "Überblick"
    assert workbook["Überblick"]["B5"].value == 7  # decisions


async def test_bad_briefing_input_is_a_422(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    lead = await make_key(sessionmaker, "manager")
    assert_problem(
        await client.get(
            REPORT, params={"from": "2026-11-10", "to": "2026-11-01"}, headers=auth(lead)
        ),
        422,
    )
    assert_problem(await _get(client, lead, format="csv"), 422)
    assert_problem(await _get(client, lead, group_by="market"), 422)


async def test_calibration_quiz_and_training_sections_count_the_window(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    """A calibration closed today with its stored agreement; a quiz attempted today by rev-1
    (all right: passed) and rev-2 (all wrong: failed): 2 attempts, 2 reviewers, 1 passed,
    mean score (1 + 0) / 2 = 0.5; a plan whose 'read' item for rev-1 and rev-2 was due an
    hour ago (2 items, none done, both overdue) and whose 'shadow' item is due after the
    window. A moderator key (rev-1) counts only itself."""
    lead = await make_key(sessionmaker, "manager", reviewer_id="lead-1")
    today = datetime.now(UTC).date()
    window = {"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}

    calibration = await create_calibration(client, lead)
    for participant, given in (("A", "hate_speech"), ("B", "hate_speech"), ("C", "harassment")):
        key = await make_key(sessionmaker, "moderator", reviewer_id=participant)
        labelled = await label(client, key, calibration["id"], {"v1": given, "v2": given})
        assert labelled.status_code == 200, labelled.text
    closed = await client.post(f"/v1/calibrations/{calibration['id']}/close", headers=auth(lead))
    assert closed.status_code == 200, closed.text
    results = (
        await client.get(f"/v1/calibrations/{calibration['id']}/results", headers=auth(lead))
    ).json()

    quiz = await create_quiz(client, lead)
    rev_1 = await reviewer_key(sessionmaker, "rev-1")
    rev_2 = await reviewer_key(sessionmaker, "rev-2")
    assert (await attempt(client, quiz["id"], rev_1, ALL_RIGHT)).status_code == 201
    wrong = {"q1": "harassment", "q2": "approve", "q3": "yes"}
    assert (await attempt(client, quiz["id"], rev_2, wrong)).status_code == 201

    now = datetime.now(UTC)
    plan = await client.post(
        "/v1/training-plans",
        json={
            "title": "Onboarding DE",
            "kind": "onboarding",
            "owners": ["lead-1"],
            "assignees": ["rev-1", "rev-2"],
            "items": [
                {
                    "id": "read",
                    "kind": "read_policy",
                    "policy_code": "hate_speech",
                    "due_at": (now - timedelta(minutes=1)).isoformat(),
                },
                {
                    "id": "shadow",
                    "kind": "shadow_audits",
                    "count": 20,
                    "due_at": (now + timedelta(days=3)).isoformat(),
                },
            ],
        },
        headers=auth(lead),
    )
    assert plan.status_code == 201, plan.text

    body = (await client.get(REPORT, params=window, headers=auth(lead))).json()
    (session,) = body["calibrations"]
    assert session["id"] == calibration["id"]
    assert session["closed_at"] == today.isoformat()
    assert session["krippendorff_alpha"] == results["agreement"]["krippendorff_alpha"]
    assert session["percent_agreement"] == results["agreement"]["percent_agreement"]
    assert (session["n_units"], session["n_raters"]) == (2, 3)
    (quiz_row,) = body["quizzes"]
    assert (quiz_row["attempts"], quiz_row["reviewers"], quiz_row["passed"]) == (2, 2, 1)
    assert quiz_row["pass_rate"] == pytest.approx(0.5)
    assert quiz_row["mean_score"] == pytest.approx(0.5)
    (plan_row,) = body["training"]
    assert (plan_row["items"], plan_row["completed"], plan_row["overdue"]) == (2, 0, 2)
    assert plan_row["completion_rate"] == 0.0

    own = (await client.get(REPORT, params=window, headers=auth(rev_1))).json()
    assert own["calibrations"] == []
    (own_quiz,) = own["quizzes"]
    assert (own_quiz["attempts"], own_quiz["reviewers"], own_quiz["passed"]) == (1, 1, 1)
    (own_plan,) = own["training"]
    assert (own_plan["items"], own_plan["overdue"]) == (1, 1)
