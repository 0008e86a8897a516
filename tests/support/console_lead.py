"""Console test support for the lead's pages (calibrations, quizzes and training,
escalations): people signed in, and what the pages' tables say."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.auth import Principal, Role
from shared.escalations import lifecycle, rules
from shared.models import Escalation
from shared.models.base import utcnow
from shared.quizzes import service as quiz_service
from shared.schemas.escalations import EscalationRuleCreate
from shared.schemas.training import PlanCreate, QuizCreate
from shared.training_plans import service as plan_service
from tests.support.console import ConsoleClient, Person, make_person
from tests.support.quizzes import quiz_body

Sessionmaker = async_sessionmaker[AsyncSession]
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
# Who writes the test data the pages show (rules, quizzes, plans): a QA lead.
LEAD = Principal(key_id="test", role=Role.MANAGER, reviewer_id="lead", markets=None)


@asynccontextmanager
async def signed_in(base_url: str, person: Person) -> AsyncIterator[ConsoleClient]:
    """A console client signed in as ``person`` (with the session's CSRF token)."""
    async with ConsoleClient(base_url) as console:
        response = await console.sign_in(person)
        assert response.status_code == 303, response.text
        yield console


async def people(
    sessionmaker: Sessionmaker, **roles: tuple[str, str | None] | str
) -> dict[str, Person]:
    """Several people at once: ``name=role`` or ``name=(role, reviewer id)``."""
    made: dict[str, Person] = {}
    for name, spec in roles.items():
        role, reviewer_id = (spec, None) if isinstance(spec, str) else spec
        made[name] = await make_person(sessionmaker, role, reviewer_id=reviewer_id)
    return made


def text_of(html: str) -> str:
    """A page's visible text, tags removed and spaces collapsed (for phrase checks)."""
    return _SPACE.sub(" ", _TAG.sub(" ", html)).strip()


def cells(html: str) -> list[str]:
    """Every table cell's text (th and td), in page order."""
    found = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", html, flags=re.S)
    return [text_of(cell) for cell in found]


def rows(html: str, table_id: str | None = None) -> list[list[str]]:
    """The body rows of a table (the one with ``id=table_id``, else every table), as texts."""
    if table_id is not None:
        match = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, flags=re.S)
        assert match is not None, f"no table #{table_id} on the page"
        html = match.group(1)
    body = "".join(re.findall(r"<tbody>(.*?)</tbody>", html, flags=re.S))
    return [cells(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]


def location(response: httpx.Response) -> str:
    """Where a 303 sends the browser."""
    assert response.status_code == 303, (response.status_code, response.text[:2000])
    return response.headers["location"]


def form_fields(**values: Any) -> dict[str, str]:
    """Form values as a browser posts them (text)."""
    return {name: "" if value is None else str(value) for name, value in values.items()}


BREACH_EVIDENCE: dict[str, Any] = {
    "metric": "accuracy",
    "observed": 0.81,
    "ci_low": 0.77,
    "ci_high": 0.85,
    "baseline": 0.93,
    "p_value": 0.0004,
    "audited": 412,
    "threshold": 0.9,
    "criteria_met": ["threshold"],
}


async def breached_escalation(
    sessionmaker: Sessionmaker,
    *,
    market: str = "DE",
    evidence: dict[str, Any] | None = None,
    breaches: int = 1,
) -> uuid.UUID:
    """An escalation opened by a rule's breach in ``market`` (as the evaluation runner
    records it), with ``breaches`` breaches in its history."""
    principal = LEAD
    async with sessionmaker() as session, session.begin():
        rule = await rules.create_rule(
            session,
            data=EscalationRuleCreate(
                name=f"DE accuracy {uuid.uuid4().hex[:6]}",
                metric="accuracy",
                market=market,
                window_days=7,
                threshold=0.9,
                min_audits=50,
                schedule="daily",
            ),
            actor=principal,
            now=utcnow(),
        )
        for _ in range(breaches):
            await lifecycle.record_breach(
                session,
                rule=rule,
                parts={"market": market},
                evidence=evidence or BREACH_EVIDENCE,
                now=utcnow(),
                reopen=None,
            )
        escalation_id = await session.scalar(
            select(Escalation.id).where(Escalation.rule_id == rule.id)
        )
    assert escalation_id is not None
    return escalation_id


async def stored_quiz(sessionmaker: Sessionmaker, **overrides: Any) -> uuid.UUID:
    """A quiz (``tests.support.quizzes.quiz_body(**overrides)``) written by a manager."""
    async with sessionmaker() as session, session.begin():
        quiz = await quiz_service.create_quiz(
            session, data=QuizCreate.model_validate(quiz_body(**overrides)), actor=LEAD
        )
    return quiz.id


async def stored_plan(
    sessionmaker: Sessionmaker,
    *,
    assignees: list[str],
    items: list[dict[str, Any]],
    owners: list[str] | None = None,
    kind: str = "remedial",
    title: str = "DE hate speech refresher",
) -> uuid.UUID:
    """A training plan written by a manager."""
    async with sessionmaker() as session, session.begin():
        plan = await plan_service.create_plan(
            session,
            data=PlanCreate.model_validate(
                {
                    "title": title,
                    "kind": kind,
                    "owners": owners or ["lead"],
                    "assignees": assignees,
                    "items": items,
                }
            ),
            actor=LEAD,
        )
    return plan.id
