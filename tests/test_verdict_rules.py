"""Error-type derivation (shared.verdicts): the rule, its escalate handling and precedence."""

from __future__ import annotations

import itertools

import pytest

from shared.verdicts import derive_error_type, same_labels

pytestmark = pytest.mark.no_db

ACTIONS = ("approve", "remove", "restrict", "escalate")


@pytest.mark.parametrize(
    ("moderator", "expected", "error_type"),
    [
        # Violating content left up.
        (("approve", []), ("remove", ["hate_speech"]), "missed_violation"),
        (("approve", []), ("restrict", ["nudity"]), "missed_violation"),
        # Acceptable content taken down or limited.
        (("remove", ["hate_speech"]), ("approve", []), "over_enforcement"),
        (("restrict", ["nudity"]), ("approve", []), "over_enforcement"),
        # Both enforce, differently.
        (("remove", ["nudity"]), ("restrict", ["nudity"]), "wrong_action"),
        (("restrict", ["nudity"]), ("remove", ["nudity"]), "wrong_action"),
        # Same action, other policy.
        (("remove", ["hate_speech"]), ("remove", ["harassment"]), "wrong_policy"),
        (("restrict", ["nudity"]), ("restrict", ["nudity", "minor_safety"]), "wrong_policy"),
        (("approve", ["satire"]), ("approve", []), "wrong_policy"),
    ],
)
def test_error_types(
    moderator: tuple[str, list[str]], expected: tuple[str, list[str]], error_type: str
) -> None:
    assert derive_error_type(*moderator, *expected) == error_type


@pytest.mark.parametrize(
    ("moderator_action", "expected_action"),
    [
        ("escalate", "approve"),  # an escalation that was not needed
        ("escalate", "remove"),
        ("escalate", "restrict"),
        ("approve", "escalate"),  # a missing escalation
        ("remove", "escalate"),
        ("restrict", "escalate"),
    ],
)
def test_any_difference_involving_escalate_is_a_wrong_action(
    moderator_action: str, expected_action: str
) -> None:
    assert derive_error_type(moderator_action, ["x"], expected_action, ["x"]) == "wrong_action"
    # Different labels do not change it: the action is the bigger difference.
    assert derive_error_type(moderator_action, ["x"], expected_action, ["y"]) == "wrong_action"


def test_escalate_to_escalate_with_other_labels_is_a_wrong_policy() -> None:
    assert derive_error_type("escalate", ["a"], "escalate", ["b"]) == "wrong_policy"


def test_precedence_direction_of_enforcement_over_action_over_labels() -> None:
    # The labels differ too, yet the direction of enforcement names the error...
    assert derive_error_type("approve", ["satire"], "remove", ["hate_speech"]) == "missed_violation"
    assert derive_error_type("remove", ["hate_speech"], "approve", ["satire"]) == "over_enforcement"
    # ...and a different action outranks different labels.
    assert derive_error_type("remove", ["hate_speech"], "restrict", ["nudity"]) == "wrong_action"


def test_labels_compare_as_sets() -> None:
    assert derive_error_type("remove", ["a", "b"], "remove", ["b", "a", "a"]) is None
    assert same_labels(["a", "b"], ("b", "a"))
    assert not same_labels(["a"], ["a", "b"])


def test_identical_decisions_are_no_error() -> None:
    for action in ACTIONS:
        assert derive_error_type(action, ["hate_speech"], action, ["hate_speech"]) is None
        assert derive_error_type(action, [], action, []) is None


def test_every_pair_of_different_decisions_has_exactly_one_error_type() -> None:
    valid = {"missed_violation", "over_enforcement", "wrong_policy", "wrong_action"}
    for first, second in itertools.product(ACTIONS, repeat=2):
        for labels in (["a"], ["b"]):
            result = derive_error_type(first, ["a"], second, labels)
            if first == second and labels == ["a"]:
                assert result is None
            else:
                assert result in valid, (first, second, labels)
