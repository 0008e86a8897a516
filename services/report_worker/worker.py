"""The report worker's arq settings: its queue, its jobs, start-up and shutdown."""

from __future__ import annotations

from typing import Any, ClassVar

from services.report_worker.auditor_quality import run_announce_accuracy_drops
from services.report_worker.background_jobs import sweep_lost_background_jobs
from services.report_worker.decision_partitions import run_maintain_decision_partitions
from services.report_worker.disputes import (
    run_close_expired_disagreements,
    run_remind_overdue_disputes,
)
from services.report_worker.escalations import (
    run_announce_overdue_escalation_actions,
    run_evaluate_due_escalation_rules,
    run_evaluate_escalation_rule,
)
from services.report_worker.intake_rollups import run_apply_intake_rollup, sweep_intake_batches
from services.report_worker.policy_questions import run_announce_overdue_policy_questions
from services.report_worker.policy_updates import run_remind_pending_policy_readers
from services.report_worker.quality_rollups import (
    run_apply_quality_rollups,
    sweep_quality_rollups,
)
from services.report_worker.report_schedules import (
    run_due_report_schedules,
    run_report_schedule,
)
from services.report_worker.sampling import sample_daily_audits, sample_due_market_days
from services.report_worker.training_reminders import run_remind_overdue_training_items
from shared.core.observability import configure_logging
from shared.core.queue import (
    Context,
    deserialize_job,
    job_function,
    scheduled_job,
    serialize_job,
)
from shared.core.workers import (
    WorkerState,
    install_state,
    installed_state,
    queue_of,
    startup_settings,
)
from shared.jobs import (
    REPORT_QUEUE,
    ApplyIntakeRollup,
    ApplyQualityRollups,
    EvaluateEscalationRule,
    RunReportSchedule,
    SampleDailyAudits,
)

# How long the result of a job whose state lives in PostgreSQL is kept (see WorkerSettings).
OUTBOX_ONLY_KEEP_RESULT_SECONDS = 60


async def startup(ctx: Context) -> None:
    """Read the settings and open the database: the state every job receives."""
    settings = startup_settings(ctx)
    configure_logging(service="report_worker", level=settings.log_level, json=settings.log_json)
    install_state(ctx, WorkerState.open(settings, redis=queue_of(ctx)))


async def shutdown(ctx: Context) -> None:
    """Close what ``startup`` opened."""
    await installed_state(ctx).close()


class WorkerSettings:
    queue_name = REPORT_QUEUE
    functions: ClassVar[list[Any]] = [
        # The rollup jobs are the queue's bulk (one per intake or verdict transaction) and
        # nobody reads their result: their work lives in PostgreSQL (intake_batches,
        # dirty_rollup_slices) and a sweep redoes what a lost job left. The result is kept
        # only so that a relay re-sending an outbox id is refused for a while (as for the
        # notifier's fan-out); an hour of them grew Redis by a key per job for the hour.
        job_function(
            ApplyIntakeRollup,
            run_apply_intake_rollup,
            timeout=60,
            keep_result=OUTBOX_ONLY_KEEP_RESULT_SECONDS,
        ),
        job_function(SampleDailyAudits, sample_daily_audits, timeout=120),
        job_function(
            ApplyQualityRollups,
            run_apply_quality_rollups,
            timeout=60,
            keep_result=OUTBOX_ONLY_KEEP_RESULT_SECONDS,
        ),
        job_function(RunReportSchedule, run_report_schedule, timeout=120),
        job_function(EvaluateEscalationRule, run_evaluate_escalation_rule, timeout=120),
    ]
    cron_jobs: ClassVar[list[Any]] = [
        scheduled_job(
            # Each schedule is one transaction: a run cut short leaves its slot due.
            run_due_report_schedules,
            name="run_due_report_schedules",
            seconds={30},
            timeout=120,
        ),
        scheduled_job(sweep_intake_batches, name="sweep_intake_batches", seconds={15}, timeout=60),
        scheduled_job(sweep_quality_rollups, name="sweep_quality_rollups", seconds={5}, timeout=60),
        scheduled_job(
            sweep_lost_background_jobs,
            name="sweep_lost_background_jobs",
            seconds={3, 18, 33, 48},
            timeout=60,
        ),
        scheduled_job(
            # Each market day commits on its own: a run cut short leaves the rest to the
            # next minute's run.
            sample_due_market_days,
            name="sample_due_market_days",
            seconds={25},
            timeout=120,
        ),
        scheduled_job(
            run_close_expired_disagreements,
            name="close_expired_disagreements",
            seconds={40},
            timeout=60,
        ),
        scheduled_job(
            run_remind_overdue_disputes, name="remind_overdue_disputes", seconds={50}, timeout=60
        ),
        scheduled_job(
            run_remind_overdue_training_items,
            name="remind_overdue_training_items",
            seconds={55},
            timeout=60,
        ),
        scheduled_job(
            # Cheap when there is nothing to do (a lock and a catalog read); the months
            # ahead exist long before they are needed, so a missed minute costs nothing.
            run_maintain_decision_partitions,
            name="maintain_decision_partitions",
            seconds={45},
            timeout=120,
        ),
        scheduled_job(
            run_announce_accuracy_drops,
            name="announce_auditor_accuracy_drops",
            seconds={35},
            timeout=60,
        ),
        scheduled_job(
            run_announce_overdue_policy_questions,
            name="announce_overdue_policy_questions",
            seconds={10},
            timeout=60,
        ),
        scheduled_job(
            run_remind_pending_policy_readers,
            name="remind_pending_policy_readers",
            seconds={20},
            timeout=60,
        ),
        scheduled_job(
            # Claims due rules one at a time (SKIP LOCKED), each its own transaction: a run
            # cut short by its timeout leaves the rest due for the next minute.
            run_evaluate_due_escalation_rules,
            name="evaluate_due_escalation_rules",
            seconds={32},
            timeout=120,
        ),
        scheduled_job(
            run_announce_overdue_escalation_actions,
            name="announce_overdue_escalation_actions",
            seconds={17},
            timeout=60,
        ),
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = staticmethod(serialize_job)
    job_deserializer = staticmethod(deserialize_job)
    # arq picks up a job whose worker was killed mid-run once its in-progress mark expires:
    # the largest timeout of any job or scheduled job here, plus 10 s. No timeout above
    # 120 s, so that is at most 130 s (tests/test_self_healing.py holds it there).
    job_timeout = 120
    max_tries = 5
    # The background jobs' (``BackgroundJobWork``): a result kept holds back the lost-job
    # sweep (shared.background_jobs.recovery) from re-queueing a job that ended without
    # recording its outcome, so such a job is retried hourly, not every sweep.
    keep_result = 3600
    max_jobs = 20
    # No redis_settings: whoever runs the worker connects it to the Redis of the settings it
    # resolved at start-up (shared.core.queue.run_worker, the tests' burst runner).
