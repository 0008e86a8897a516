"""Verdict rules: which kind of error an incorrect verdict records. Pure, no I/O.

An auditor who finds a moderator's decision incorrect says what it should have been (the
expected action and policy labels). The error type is derived from the two decisions, so
that it is the same for everyone and cannot contradict them:

- ``missed_violation``: the moderator did not enforce (``approve``) where the auditor expects
  enforcement (``remove`` or ``restrict``): violating content stayed up.
- ``over_enforcement``: the moderator enforced (``remove`` or ``restrict``) where the auditor
  expects ``approve``: acceptable content was taken down or limited.
- ``wrong_action``: any other difference of action: ``remove`` instead of ``restrict`` (or
  the reverse), and every difference that involves ``escalate``. Escalating hands the item
  to specialists, neither enforcing nor approving it, so an escalation that was not needed,
  or one that was missing, is a wrong choice of action rather than a missed violation or an
  over-enforcement.
- ``wrong_policy``: the same action, under different policy labels (compared as sets, order
  and repeats ignored).

Precedence, when several apply (the action differs and so do the labels): the direction of
enforcement first (missed violation, over-enforcement), then the action, then the labels;
the most consequential difference for the content and its author names the error.

Two identical decisions (same action, same set of labels) are no error: ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Action = Literal["approve", "remove", "restrict", "escalate"]
ErrorType = Literal["missed_violation", "over_enforcement", "wrong_policy", "wrong_action"]

# Actions that act against the content (take it down or limit its reach).
ENFORCING_ACTIONS: frozenset[str] = frozenset({"remove", "restrict"})
NON_ENFORCING_ACTION = "approve"


def same_labels(first: Iterable[str], second: Iterable[str]) -> bool:
    """Whether two label lists name the same policies (order and repeats ignored)."""
    return set(first) == set(second)


def derive_error_type(
    moderator_action: str,
    moderator_labels: Iterable[str],
    expected_action: str,
    expected_labels: Iterable[str],
) -> ErrorType | None:
    """The error type of a moderator's decision against the auditor's expected one.

    See the module docstring for the rule and its precedence; ``None`` when the two
    decisions are the same (nothing is wrong).
    """
    if moderator_action == NON_ENFORCING_ACTION and expected_action in ENFORCING_ACTIONS:
        return "missed_violation"
    if moderator_action in ENFORCING_ACTIONS and expected_action == NON_ENFORCING_ACTION:
        return "over_enforcement"
    if moderator_action != expected_action:
        return "wrong_action"
    if not same_labels(moderator_labels, expected_labels):
        return "wrong_policy"
    return None
