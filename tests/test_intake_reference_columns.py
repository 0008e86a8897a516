"""The reference columns the intake statement registers: sorted, distinct, each queue with
the market it was first seen in, each moderator with every market it decided in."""

from __future__ import annotations

import pytest

from services.audit_api.decisions.writer import reference_columns
from shared.schemas.decisions import DecisionEvent
from tests.conftest import decision_event

pytestmark = pytest.mark.no_db


def test_reference_columns_are_sorted_distinct_and_paired() -> None:
    # (market, queue, moderator, policy labels) of four events.
    fields = [
        ("DE", "q-b", "m-2", ["x"]),
        ("AT", "q-b", "m-2", []),
        ("AT", "q-a", "m-1", ["y", "x"]),
        ("DE", "q-a", "m-2", ["y"]),
    ]
    events = [
        DecisionEvent.model_validate(
            decision_event(
                n, market=market, queue=queue, moderator_id=moderator, policy_labels=labels
            )
        )
        for n, (market, queue, moderator, labels) in enumerate(fields)
    ]
    markets, languages, zones, queues, queue_markets, policies, moderators, moderator_markets = (
        reference_columns(events)
    )
    assert markets == ["AT", "DE"]
    assert len(languages) == len(zones) == 2
    assert queues == ["q-a", "q-b"]
    assert queue_markets == ["AT", "DE"]  # the market each queue was first seen in
    assert policies == ["x", "y"]
    assert list(zip(moderators, moderator_markets, strict=True)) == [
        ("m-1", "AT"),
        ("m-2", "AT"),
        ("m-2", "DE"),
    ]
