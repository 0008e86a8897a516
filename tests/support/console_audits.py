"""Console test support for the workbench and the moderator's audits: auditors with a work
profile, and audits judged through the API (decisions arrive by the signed webhook)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.async_api import Page
from sqlalchemy import select

from services.report_worker.sampling import sample_daily_audits
from services.report_worker.worker import WorkerSettings
from shared.core.queue import ArqRedis, job_function
from shared.core.settings import Settings
from shared.jobs import SampleDailyAudits
from shared.models import Audit, Decision
from tests.conftest import SignedSender, auth, decision_event, relay_all, run_worker_burst
from tests.support.audits import Sessions, auditor, claim, make_audits, set_profile, verdict
from tests.support.console import Person, make_person

_AUDIT_LINK = re.compile(r"/console/workbench/audits/([0-9a-f-]{36})")


async def console_auditor(
    sessionmaker: Sessions, *, markets: list[str] | None = None, language: str = "en"
) -> Person:
    """A QA auditor who signs in to the console and works in DE / de."""
    person = await make_person(sessionmaker, "qa_auditor", language=language)
    assert person.reviewer_id is not None
    await set_profile(sessionmaker, person.reviewer_id, markets or ["DE"], ["de"])
    return person


async def console_moderator(sessionmaker: Sessions, *, language: str = "en") -> Person:
    return await make_person(sessionmaker, "moderator", language=language)


def events_of(
    moderator_id: str, count: int = 1, *, start: int = 1, **fields: Any
) -> list[dict[str, Any]]:
    """Decision events of ``moderator_id`` (unique event ids from ``start``)."""
    tag = uuid.uuid4().hex[:6]
    # Yesterday: inside the accuracy report's default window whenever the tests run.
    fields.setdefault("decided_at", (datetime.now(UTC) - timedelta(days=1)).isoformat())
    return [
        decision_event(
            n,
            event_id=f"evt-{tag}-{n}",
            content_id=f"vid-{tag}-{n}",
            moderator_id=moderator_id,
            **fields,
        )
        for n in range(start, start + count)
    ]


async def pending_audits(
    sender: SignedSender, sessionmaker: Sessions, moderator_id: str, count: int = 1, **fields: Any
) -> list[uuid.UUID]:
    """``count`` pending audits of decisions of ``moderator_id`` (DE, de, remove, hate_speech)."""
    return await make_audits(sender, sessionmaker, events_of(moderator_id, count, **fields))


async def judged_audit(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    moderator_id: str,
    *,
    outcome: str = "incorrect",
    auditor_id: str | None = None,
) -> dict[str, Any]:
    """An audit of ``moderator_id``'s decision judged through the API by a fresh auditor
    (incorrect: expected approve, major); the API's answer."""
    [audit_id] = await pending_audits(sender, sessionmaker, moderator_id)
    key = await auditor(sessionmaker, auditor_id or f"aud-{uuid.uuid4().hex[:6]}")
    claimed = await claim(client, key)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["id"] == str(audit_id)
    body: dict[str, Any] = {"outcome": outcome}
    if outcome == "incorrect":
        body.update(expected_action="approve", severity="major", comment="satire, not hate")
    judged = await verdict(client, key, audit_id, **body)
    assert judged.status_code == 200, judged.text
    result: dict[str, Any] = judged.json()
    return result


def audit_id_in(location: str) -> str:
    """The audit id a workbench redirect points at."""
    found = _AUDIT_LINK.search(location)
    assert found is not None, location
    return found.group(1)


async def sign_in_in_browser(page: Page, person: Person) -> None:
    """Sign in through the form, as a person does (lands on the role's daily page)."""
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()


async def sampled_audits(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    queue: ArqRedis,
    settings: Settings,
    admin_key: str,
    moderator_id: str,
    count: int = 1,
) -> list[uuid.UUID]:
    """Decisions of ``moderator_id`` sent by the signed webhook (yesterday, DE), then sampled
    the way production does it: a plan auditing every decision of the queue, a sampling
    request, the outbox relay and the report worker's job. The audits it created."""
    decided = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    decided -= timedelta(days=1)
    events = events_of(moderator_id, count, decided_at=decided.isoformat())
    posted = await sender.post({"events": events})
    assert posted.status_code == 202, posted.text
    plan = await client.post(
        "/v1/sampling-plans",
        json={"queue": "de-video-standard", "rate": 1.0, "min_per_moderator": 1},
        headers=auth(admin_key),
    )
    assert plan.status_code == 201, plan.text
    requested = await client.post(
        "/v1/audits/sample",
        json={"day": decided.date().isoformat(), "market": "DE"},
        headers=auth(admin_key),
    )
    assert requested.status_code == 202, requested.text
    await relay_all(sessionmaker, queue)
    await run_worker_burst(
        WorkerSettings,
        settings,
        functions=[
            *WorkerSettings.functions,
            job_function(SampleDailyAudits, sample_daily_audits, timeout=300),
        ],
    )
    job = await client.get(f"/v1/jobs/{requested.json()['job_id']}", headers=auth(admin_key))
    assert job.json()["status"] == "complete", job.text
    event_ids = [event["event_id"] for event in events]
    async with sessionmaker() as session:
        audit_ids = await session.scalars(
            select(Audit.id)
            .join(Decision, Decision.id == Audit.decision_id)
            .where(Decision.event_id.in_(event_ids))
        )
        found = list(audit_ids)
    assert len(found) == count
    return found
