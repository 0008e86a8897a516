"""Escalation jobs: on-demand rule evaluation, the schedule of due rules, overdue actions
(``shared.escalations``)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from shared.background_jobs.service import FINAL_STATUSES, complete_job, fail_job, start_job
from shared.core.db import unit_of_work
from shared.core.workers import WorkerState
from shared.escalations.lifecycle import announce_overdue_actions
from shared.escalations.runner import evaluate_due_rules, evaluate_rule
from shared.jobs import EvaluateEscalationRule
from shared.models import EscalationRule
from shared.models.base import utcnow

logger = logging.getLogger(__name__)


async def run_evaluate_escalation_rule(
    state: WorkerState, job: EvaluateEscalationRule
) -> dict[str, Any] | None:
    """arq entry point: evaluate one rule now and keep the summary on its BackgroundJob.

    Idempotent: a job found complete or failed is not run again, and an evaluation run twice
    adds a breach to the history but never a second escalation.
    """
    sessionmaker = state.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        record = await start_job(session, job_id=job.job_id, now=utcnow())
    if record is None:
        logger.warning("evaluation job without its row, skipped", extra={"job_id": job.job_id})
        return None
    if record.status in FINAL_STATUSES:
        return {"status": record.status, "already_done": True}
    try:
        async with unit_of_work(sessionmaker) as session:
            rule = await session.scalar(
                select(EscalationRule).where(EscalationRule.id == job.rule_id).with_for_update()
            )
            if rule is None:
                await fail_job(
                    session, job_id=job.job_id, error="the rule no longer exists", now=utcnow()
                )
                return None
            summary = await evaluate_rule(session, rule=rule, now=utcnow())
            await complete_job(session, job_id=job.job_id, result=summary, now=utcnow())
    except Exception as exc:
        logger.exception("escalation evaluation failed", extra={"job_id": str(job.job_id)})
        async with unit_of_work(sessionmaker) as session:
            await fail_job(
                session,
                job_id=job.job_id,
                error=f"evaluation failed ({type(exc).__name__}); the report worker's log has "
                "the details",
                now=utcnow(),
            )
        return None
    return summary


async def run_evaluate_due_escalation_rules(state: WorkerState) -> int:
    """Scheduled (every minute): evaluate the rules whose hour or day has come."""
    return await evaluate_due_rules(state.sessionmaker, now=utcnow())


async def run_announce_overdue_escalation_actions(state: WorkerState) -> int:
    """Scheduled (every minute): ``escalation.action_overdue`` once per action and UTC day."""
    async with unit_of_work(state.sessionmaker) as session:
        announced = await announce_overdue_actions(session, now=utcnow())
    if announced:
        logger.info("overdue escalation actions announced", extra={"announced": announced})
    return announced
