"""All SQLAlchemy models; importing this package registers every table on ``Base.metadata``."""

from shared.models.analytics import (
    ALL_MARKETS,
    ALL_POLICIES,
    NO_POLICY,
    ActionConfusionRollup,
    PopulationDayRollup,
    QualityRollup,
    QueueDayRollup,
)
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
from shared.models.auth import ROLES, ApiKey, ConsoleSession, PasswordLink, User
from shared.models.base import Base
from shared.models.calibration import CalibrationItem, CalibrationLabel, CalibrationSession
from shared.models.escalations import (
    Escalation,
    EscalationAction,
    EscalationBreach,
    EscalationRule,
)
from shared.models.golden import AuditorAccuracyAnnouncement, GoldenItem, GoldenVerdict
from shared.models.intake import (
    Decision,
    DecisionEventKey,
    IntakeBatch,
    RejectedBatch,
    Source,
)
from shared.models.notify import Channel, Delivery, DeliveryAttempt, DigestItem, Event
from shared.models.outbox import OutboxJob
from shared.models.policy import (
    PolicyAcknowledgement,
    PolicyQuestion,
    PolicyUpdate,
    PolicyVersion,
)
from shared.models.reference import Market, Policy, Queue, Reviewer
from shared.models.report_schedules import ReportSchedule, ReportSnapshot, ReportSnapshotFile
from shared.models.training import (
    Quiz,
    QuizAttempt,
    QuizRetakeGrant,
    TrainingItemProgress,
    TrainingPlan,
    TrainingPlanItem,
)

__all__ = [
    "ALL_MARKETS",
    "ALL_POLICIES",
    "NO_POLICY",
    "ROLES",
    "ActionConfusionRollup",
    "ApiKey",
    "Appeal",
    "Audit",
    "AuditLogEntry",
    "AuditorAccuracyAnnouncement",
    "BackgroundJob",
    "Base",
    "CalibrationItem",
    "CalibrationLabel",
    "CalibrationSession",
    "Channel",
    "ConsoleSession",
    "Decision",
    "DecisionEventKey",
    "Delivery",
    "DeliveryAttempt",
    "DigestItem",
    "Disagreement",
    "DisagreementChange",
    "Escalation",
    "EscalationAction",
    "EscalationBreach",
    "EscalationRule",
    "Event",
    "GoldenItem",
    "GoldenVerdict",
    "IntakeBatch",
    "Market",
    "OutboxJob",
    "PasswordLink",
    "Policy",
    "PolicyAcknowledgement",
    "PolicyQuestion",
    "PolicyUpdate",
    "PolicyVersion",
    "PopulationDayRollup",
    "QualityRollup",
    "Queue",
    "QueueDayRollup",
    "Quiz",
    "QuizAttempt",
    "QuizRetakeGrant",
    "RejectedBatch",
    "ReportSchedule",
    "ReportSnapshot",
    "ReportSnapshotFile",
    "Reviewer",
    "SamplingPlan",
    "SamplingRun",
    "SensitiveCategoryCap",
    "Source",
    "TrainingItemProgress",
    "TrainingPlan",
    "TrainingPlanItem",
    "User",
    "Verdict",
]
