"""All SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from shared.models.audits import (
    Appeal,
    Audit,
    AuditLogEntry,
    BackgroundJob,
    Disagreement,
    DisagreementChange,
    SamplingPlan,
    SamplingRun,
    SensitiveCategoryCap,
    Verdict,
)
from shared.models.auth import ROLES, ApiKey
from shared.models.base import Base
from shared.models.intake import (
    Decision,
    IntakeBatch,
    IntakeDailyRollup,
    RejectedBatch,
    Source,
)
from shared.models.notify import Channel, Delivery, DeliveryAttempt, Event
from shared.models.outbox import OutboxJob
from shared.models.reference import Market, Policy, Queue, Reviewer

__all__ = [
    "ROLES",
    "ApiKey",
    "Appeal",
    "Audit",
    "AuditLogEntry",
    "BackgroundJob",
    "Base",
    "Channel",
    "Decision",
    "Delivery",
    "DeliveryAttempt",
    "Disagreement",
    "DisagreementChange",
    "Event",
    "IntakeBatch",
    "IntakeDailyRollup",
    "Market",
    "OutboxJob",
    "Policy",
    "Queue",
    "RejectedBatch",
    "Reviewer",
    "SamplingPlan",
    "SamplingRun",
    "SensitiveCategoryCap",
    "Source",
    "Verdict",
]
