"""Domain event types and their payloads: what the notifier renders for people."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Insert, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from shared.core.observability import request_id_var
from shared.core.outbox import OUTBOX_CHANNEL
from shared.jobs import FanOutEvent
from shared.models import Event, OutboxJob
from shared.models.base import utcnow


class EventType(StrEnum):
    SOURCE_REJECTED_BATCH = "source.rejected_batch"
    SOURCE_SECRET_ROTATED = "source.secret_rotated"  # noqa: S105
    POLICY_UPDATE_PUBLISHED = "policy_update.published"
    DISAGREEMENT_OPENED = "disagreement.opened"
    DISPUTE_AWAITING_ARBITRATION = "dispute.awaiting_arbitration"
    DECISION_CORRECTED = "decision.corrected"
    CALIBRATION_OPENED = "calibration.opened"
    CALIBRATION_CLOSED = "calibration.closed"
    TRAINING_ITEM_OVERDUE = "training.item_overdue"
    AUDITOR_ACCURACY_DROPPED = "auditor.accuracy_dropped"
    POLICY_UPDATE_REMINDER = "policy_update.reminder"
    POLICY_QUESTION_ASKED = "policy_question.asked"
    POLICY_QUESTION_ANSWERED = "policy_question.answered"
    POLICY_QUESTION_OVERDUE = "policy_question.overdue"
    ESCALATION_OPENED = "escalation.opened"
    ESCALATION_ACTION_OVERDUE = "escalation.action_overdue"
    QUIZ_ASSIGNED = "quiz.assigned"
    REPORT_READY = "report.ready"


# Not a subscription: the one message that carries a digest channel's collected events.
DIGEST_EVENT_TYPE = "digest"

# What a digest channel collects into its hourly or daily message; every other type is sent
# at once (an escalation, a policy update or a question waiting for an answer cannot wait).
LOW_PRIORITY_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.CALIBRATION_OPENED,
        EventType.CALIBRATION_CLOSED,
        EventType.DISAGREEMENT_OPENED,
        EventType.POLICY_QUESTION_ANSWERED,
        EventType.QUIZ_ASSIGNED,
        EventType.TRAINING_ITEM_OVERDUE,
        EventType.SOURCE_SECRET_ROTATED,
    }
)


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceRejectedBatch(EventPayload):
    """A signed request from a known source was refused; its owners should fix the sender."""

    id: uuid.UUID
    source: str
    status: int
    reason: str
    errors: list[dict[str, Any]]
    event_count: int | None


class SourceSecretRotated(EventPayload):
    id: uuid.UUID
    source: str
    previous_secret_expires_at: datetime | None


class DisagreementOpened(EventPayload):
    """An incorrect verdict opened a disagreement; the moderator may dispute it."""

    id: uuid.UUID
    audit_id: uuid.UUID
    decision_id: int
    moderator_id: str
    market: str
    queue: str
    error_type: str | None
    severity: str | None
    expected_action: str | None
    dispute_deadline: AwareDatetime


class DisputeAwaitingArbitration(EventPayload):
    """A disputed verdict has waited for a ruling longer than the SLA."""

    id: uuid.UUID
    audit_id: uuid.UUID
    decision_id: int
    moderator_id: str
    auditor_id: str
    market: str
    queue: str
    dispute_reason: str | None
    disputed_at: AwareDatetime
    waiting_hours: int
    sla_hours: int


class DecisionCorrected(EventPayload):
    """An audit found a source's decision wrong: what it should have been (sent to the source)."""

    decision_id: int
    event_id: str = Field(description="The source's own event id of the corrected decision.")
    content_id: str
    original_action: str
    corrected_action: str | None
    corrected_labels: list[str] | None
    severity: str | None
    error_type: str | None
    verdict_id: uuid.UUID
    corrected_at: AwareDatetime


class CalibrationOpened(EventPayload):
    """A calibration session was opened: its participants are asked to label its items."""

    id: uuid.UUID
    title: str
    market: str
    participants: list[str]
    deadline: AwareDatetime | None


class CalibrationClosed(EventPayload):
    """A calibration session was closed: the summary of how consistently policy was applied."""

    id: uuid.UUID
    title: str
    market: str
    krippendorff_alpha: float | None
    percent_agreement: float | None
    flagged_items: int
    n_items: int
    participants: int


class TrainingItemOverdue(EventPayload):
    """A training-plan item is past its due date and not done (sent once per assignee)."""

    plan_id: uuid.UUID
    plan_title: str
    plan_kind: str
    item_id: str
    item_kind: str
    reviewer_id: str
    owners: list[str]
    policy_code: str | None
    quiz_id: uuid.UUID | None
    due_at: AwareDatetime


class AuditorAccuracyDropped(EventPayload):
    """An auditor's golden-item accuracy of an ISO week fell below the threshold."""

    auditor_id: str
    week: str = Field(description="The ISO week, e.g. 2026-W47.")
    judged: int
    matched: int
    accuracy: float
    threshold: float


class PolicyUpdateText(BaseModel):
    """A policy update's text in one language."""

    model_config = ConfigDict(extra="forbid")

    title: str
    summary: str
    body: str


class PolicyUpdatePublished(EventPayload):
    """A policy update was published: its reviewers must read and acknowledge it.

    ``texts`` holds every language it was written in; ``language`` names the original, shown
    inside a translated frame to channels whose language has no text of its own.
    """

    id: uuid.UUID
    language: str
    texts: dict[str, PolicyUpdateText]
    policy_codes: list[str]
    versions: dict[str, int] = Field(description="The new version of each policy code.")
    markets: list[str]
    effective_at: AwareDatetime
    published_by: str | None
    quiz_id: uuid.UUID | None = None


class PolicyUpdateReminder(EventPayload):
    """A published update is not yet acknowledged by some of its reviewers, and its
    effective date is near (sent once per update)."""

    id: uuid.UUID
    language: str
    texts: dict[str, PolicyUpdateText]
    policy_codes: list[str]
    markets: list[str]
    effective_at: AwareDatetime
    pending: int
    acknowledged: int


class PolicyQuestionAsked(EventPayload):
    """A reviewer asked a question on a policy code; the market's policy POCs answer it."""

    id: uuid.UUID
    policy_code: str
    market: str
    question: str
    asked_by: str
    answer_due_at: AwareDatetime


class PolicyQuestionAnswered(EventPayload):
    """A policy POC answered a question (sent to the market's channels and the asker)."""

    id: uuid.UUID
    policy_code: str
    market: str
    question: str
    answer: str
    asked_by: str
    answered_by: str
    answered_at: AwareDatetime


class PolicyQuestionOverdue(EventPayload):
    """A question is still unanswered past the SLA (sent once per question)."""

    id: uuid.UUID
    policy_code: str
    market: str
    question: str
    asked_by: str
    asked_at: AwareDatetime
    sla_hours: int


class EscalationOpened(EventPayload):
    """Quality dropped in a slice (or someone opened an escalation by hand): an RCA starts.

    ``slice`` names the dimensions the escalation is about (``{"market": "DE"}``); the
    evidence is present for a rule's breach and null for a manual escalation.
    """

    id: uuid.UUID
    title: str
    slice: dict[str, str]
    metric: str | None
    value: float | None = None
    threshold: float | None = None
    baseline: float | None = None
    p_value: float | None = None
    audits: int | None = None
    rule_id: uuid.UUID | None = None
    opened_at: AwareDatetime


class EscalationActionOverdue(EventPayload):
    """A corrective action of an escalation is past its due date (once per action and day)."""

    id: uuid.UUID = Field(description="The escalation's id.")
    title: str
    action_id: uuid.UUID
    action: str
    owner: str
    due_at: AwareDatetime


class QuizAssigned(EventPayload):
    """A quiz was assigned (on its own, or with the policy update it belongs to)."""

    id: uuid.UUID
    title: str
    policy_code: str | None
    policy_update_id: uuid.UUID | None
    markets: list[str]
    assignees: int
    due_at: AwareDatetime | None


class ReportFile(BaseModel):
    """A report file sent with a message (attached to e-mail; chat links to it)."""

    model_config = ConfigDict(extra="forbid")

    filename: str
    content_type: str
    content_base64: str


class ReportReady(EventPayload):
    """A scheduled report ran: its snapshot can be opened, and its files are attached."""

    id: uuid.UUID = Field(description="The report run's id.")
    schedule_id: uuid.UUID | None
    title: str
    report: str
    period_from: str
    period_to: str
    formats: list[str]
    attachments: list[ReportFile] = Field(default_factory=list)


EVENT_PAYLOADS: dict[EventType, type[EventPayload]] = {
    EventType.SOURCE_REJECTED_BATCH: SourceRejectedBatch,
    EventType.SOURCE_SECRET_ROTATED: SourceSecretRotated,
    EventType.DISAGREEMENT_OPENED: DisagreementOpened,
    EventType.DISPUTE_AWAITING_ARBITRATION: DisputeAwaitingArbitration,
    EventType.DECISION_CORRECTED: DecisionCorrected,
    EventType.CALIBRATION_OPENED: CalibrationOpened,
    EventType.CALIBRATION_CLOSED: CalibrationClosed,
    EventType.TRAINING_ITEM_OVERDUE: TrainingItemOverdue,
    EventType.AUDITOR_ACCURACY_DROPPED: AuditorAccuracyDropped,
    EventType.POLICY_UPDATE_PUBLISHED: PolicyUpdatePublished,
    EventType.POLICY_UPDATE_REMINDER: PolicyUpdateReminder,
    EventType.POLICY_QUESTION_ASKED: PolicyQuestionAsked,
    EventType.POLICY_QUESTION_ANSWERED: PolicyQuestionAnswered,
    EventType.POLICY_QUESTION_OVERDUE: PolicyQuestionOverdue,
    EventType.ESCALATION_OPENED: EscalationOpened,
    EventType.ESCALATION_ACTION_OVERDUE: EscalationActionOverdue,
    EventType.QUIZ_ASSIGNED: QuizAssigned,
    EventType.REPORT_READY: ReportReady,
}


async def record_event(
    session: AsyncSession,
    *,
    type: EventType,
    data: EventPayload,
    market: str | None = None,
    queue: str | None = None,
    source_id: uuid.UUID | None = None,
    recipients: list[str] | None = None,
    channel_ids: list[uuid.UUID] | None = None,
) -> Event:
    """Store the event and, in the same transaction, queue its fan-out to channels; returns
    the event (not added to the session: its row is written by one statement).

    ``market`` and ``queue`` route it to the channels subscribed to them; ``recipients``
    (reviewer ids) also get it personally, by e-mail to the address of their profile.
    ``channel_ids`` addresses it to exactly those channels instead of their subscribers.
    """
    event = Event(
        id=uuid.uuid4(),
        type=type.value,
        occurred_at=utcnow(),
        market=market,
        queue=queue,
        recipients=recipients or None,
        channel_ids=channel_ids or None,
        data=data.model_dump(mode="json"),
        request_id=request_id_var.get(),
        source_id=source_id,
    )
    await session.execute(
        _RECORD_EVENT,
        {
            "id": event.id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "market": event.market,
            "queue": event.queue,
            "recipients": event.recipients,
            "channel_ids": event.channel_ids,
            "data": event.data,
            "request_id": event.request_id,
            "source_id": event.source_id,
            "job_id": uuid.uuid4(),
            "job": FanOutEvent(event_id=event.id).model_dump(mode="json"),
        },
    )
    return event


def event_and_fan_out_inserts(
    *,
    id: str,
    type: str,
    occurred_at: str,
    data: str,
    request_id: str,
    job_id: str,
    job: str,
    market: str | None = None,
    queue: str | None = None,
    recipients: str | None = None,
    channel_ids: str | None = None,
    source_id: str | None = None,
) -> tuple[Insert, Insert]:
    """The INSERTs of an event and of its fan-out job in the outbox: the rows
    ``record_event`` writes, for statements that write them beside other rows. Each argument
    names the bound parameter of its column (``job``: the ``FanOutEvent`` payload); a column
    given no name is left NULL."""
    columns = {
        "id": id,
        "type": type,
        "occurred_at": occurred_at,
        "request_id": request_id,
        "market": market,
        "queue": queue,
        "recipients": recipients,
        "channel_ids": channel_ids,
        "source_id": source_id,
    }
    event = insert(_EVENTS).values(
        data=bindparam(data, type_=JSONB),
        **{column: bindparam(name) for column, name in columns.items() if name is not None},
    )
    fan_out = insert(_OUTBOX).values(
        id=bindparam(job_id),
        queue_name=FanOutEvent.queue,
        function=FanOutEvent.function,
        payload=bindparam(job, type_=JSONB),
        request_id=bindparam(request_id),
    )
    return event, fan_out


_EVENTS: Table = Event.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxJob.__table__  # type: ignore[assignment]
_EVENT, _FAN_OUT = event_and_fan_out_inserts(
    id="id",
    type="type",
    occurred_at="occurred_at",
    data="data",
    request_id="request_id",
    job_id="job_id",
    job="job",
    market="market",
    queue="queue",
    recipients="recipients",
    channel_ids="channel_ids",
    source_id="source_id",
)
# The event, its fan-out job in the outbox (``add_job``'s row) and the NOTIFY that wakes the
# relay at commit, in one statement of constant text, prepared once per connection: every
# event's producer pays one round trip, not an ORM flush and a second statement.
_RECORD_EVENT = (
    select(func.pg_notify(OUTBOX_CHANNEL, ""))
    .add_cte(_EVENT.cte("event"))
    .add_cte(_FAN_OUT.cte("job"))
)
