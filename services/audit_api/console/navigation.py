"""The console's navigation: which pages each role sees in the menu.

The menu only shows the way; every page declares and checks its own roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core.auth import Role

A, M, P, Q, D = Role.ADMIN, Role.MANAGER, Role.POLICY_POC, Role.QA_AUDITOR, Role.MODERATOR


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    # A msgid: the template translates it.
    label: str
    roles: frozenset[Role]


NAVIGATION: tuple[NavItem, ...] = (
    NavItem("/console/workbench", "Workbench", frozenset({Q})),
    NavItem("/console/my-audits", "My audits", frozenset({D})),
    NavItem("/console/arbitration", "Arbitration", frozenset({P, M, A})),
    NavItem("/console/overview", "Overview", frozenset({M, A})),
    NavItem("/console/audits", "Audits", frozenset({M, A, P})),
    NavItem("/console/calibrations", "Calibrations", frozenset({M, A, Q, P, D})),
    NavItem("/console/training", "Quizzes and training", frozenset({M, A, Q, D, P})),
    NavItem("/console/escalations", "Escalations", frozenset({M, A, P, Q})),
    NavItem("/console/reports", "Reports", frozenset({M, A})),
    NavItem("/console/policy-updates", "Policy updates", frozenset({P, A, M, Q, D})),
    NavItem("/console/policy-questions", "Policy questions", frozenset({P, A, M, Q, D})),
    NavItem("/console/admin/people", "People", frozenset({A})),
    NavItem("/console/admin/api-keys", "API keys", frozenset({A})),
    NavItem("/console/admin/sources", "Sources", frozenset({A})),
    NavItem("/console/admin/channels", "Channels", frozenset({A})),
    NavItem("/console/admin/deliveries", "Deliveries", frozenset({A})),
)


def navigation_for(role: Role) -> list[NavItem]:
    """The menu entries of ``role``, in menu order."""
    return [item for item in NAVIGATION if role in item.roles]
