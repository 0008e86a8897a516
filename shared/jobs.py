"""Job contracts between the services: one pydantic model per arq job.

The sender writes the model to the outbox; the receiver validates it when the job starts.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

REPORT_QUEUE = "plumbline:report"
NOTIFY_QUEUE = "plumbline:notify"


class Job(BaseModel):
    """A job payload. ``function`` and ``queue`` say who runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: ClassVar[str]
    queue: ClassVar[str]


class BackgroundJobWork(Job):
    """The work of a ``BackgroundJob`` row (``shared.background_jobs``): queued under the
    row's id (outbox row and arq job alike), so the row names its arq job, and the sweep of
    jobs Redis lost (``shared.background_jobs.recovery``) finds and re-queues it."""

    job_id: uuid.UUID


class ApplyIntakeRollup(Job):
    """Count one accepted intake batch into the daily intake rollup."""

    function = "apply_intake_rollup"
    queue = REPORT_QUEUE

    batch_id: uuid.UUID


class ApplyQualityRollups(Job):
    """Recompute the dirty slices of the quality rollups (``shared.analytics.rollups``).

    Queued once per transaction that marked a slice dirty; the job applies every pending
    dirty slice, not only that transaction's, so it carries nothing.
    """

    function = "apply_quality_rollups"
    queue = REPORT_QUEUE


class SampleDailyAudits(BackgroundJobWork):
    """Sample one market day (or every market's) for audits; ``job_id`` is its BackgroundJob."""

    function = "sample_daily_audits"
    queue = REPORT_QUEUE

    day: date
    market: str | None = None


class EvaluateEscalationRule(BackgroundJobWork):
    """Evaluate one escalation rule now; ``job_id`` is its BackgroundJob."""

    function = "evaluate_escalation_rule"
    queue = REPORT_QUEUE

    rule_id: uuid.UUID


class RunReportSchedule(BackgroundJobWork):
    """Run a report schedule now (a snapshot by hand); ``job_id`` is its BackgroundJob."""

    function = "run_report_schedule"
    queue = REPORT_QUEUE

    schedule_id: uuid.UUID


class FanOutEvent(Job):
    """Render an event for every channel subscribed to it and create the deliveries."""

    function = "fan_out_event"
    queue = NOTIFY_QUEUE

    event_id: uuid.UUID


class FanOutEvents(Job):
    """``FanOutEvent`` for many events in one job: what the outbox relay queues for the
    fan-outs it moves together (``shared.core.outbox.queued_payloads``), so a burst of events
    costs the notifier one job's start and finish, not one per event."""

    function = "fan_out_events"
    queue = NOTIFY_QUEUE

    event_ids: list[uuid.UUID]


class DeliverMessage(Job):
    """Attempt one delivery now (its schedule and attempts live in PostgreSQL)."""

    function = "deliver_message"
    queue = NOTIFY_QUEUE

    delivery_id: uuid.UUID


class SendTestMessage(Job):
    """Send a channel's test message now and return what its target answered (the API
    waits for the result: ``POST /v1/channels/{id}/test``)."""

    function = "send_test_message"
    queue = NOTIFY_QUEUE

    channel_id: uuid.UUID
