"""All SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from shared.models.auth import ROLES, ApiKey
from shared.models.base import Base
from shared.models.intake import (
    AppliedIntakeBatch,
    Decision,
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
    "AppliedIntakeBatch",
    "Base",
    "Channel",
    "Decision",
    "Delivery",
    "DeliveryAttempt",
    "Event",
    "IntakeDailyRollup",
    "Market",
    "OutboxJob",
    "Policy",
    "Queue",
    "RejectedBatch",
    "Reviewer",
    "Source",
]
