"""Builders for the analytics reports' data, all through the real paths: decisions over the
signed webhook, verdicts claimed and given over the API, disputes and rulings over the API,
appeal outcomes over their signed webhook.

A ``Judged`` case names its decision's event fields and the verdict the auditor gives (and
what becomes of its disagreement), so a test lists its data set as a table it can sum by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from tests.conftest import SignedSender, auth, decision_event, make_key
from tests.support.audits import Sessions, auditor, claim, make_audits, verdict

Ruling = Literal["undisputed", "upheld", "overturned"]


@dataclass
class Judged:
    """One decision and its audit: ``verdict`` is the verdict body (``None``: no audit);
    ``ruling`` what becomes of an incorrect verdict's disagreement (disputed and then
    upheld or overturned, or never disputed)."""

    fields: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] | None = field(default_factory=lambda: {"outcome": "correct"})
    ruling: Ruling = "undisputed"


def incorrect(expected_action: str, severity: str = "major", **body: Any) -> dict[str, Any]:
    """An incorrect verdict body."""
    return {
        "outcome": "incorrect",
        "expected_action": expected_action,
        "severity": severity,
        **body,
    }


async def seed_judged(
    client: httpx.AsyncClient,
    sender: SignedSender,
    sessionmaker: Sessions,
    cases: list[Judged],
    *,
    prefix: str = "evt",
) -> dict[str, dict[str, Any]]:
    """Post every case's decision (event ids ``{prefix}-{n}``), audit those with a verdict,
    judge them as an auditor would (claim, verdict), then dispute and rule as each case says.

    The auditor is ``aud-1``, working in every market and language of the cases; disputes
    come from each moderator's own key, rulings from a policy POC. Returns the judged audits
    (the verdict answers) by event id.
    """
    events = [
        decision_event(n, event_id=f"{prefix}-{n}", content_id=f"{prefix}-c{n}", **case.fields)
        for n, case in enumerate(cases)
    ]
    planned = {
        event["event_id"]: case for event, case in zip(events, cases, strict=True) if case.verdict
    }
    response = await sender.post({"events": events})
    assert response.status_code == 202, response.text
    audited = [event for event in events if event["event_id"] in planned]
    if not audited:
        return {}
    await make_audits(sender, sessionmaker, audited)
    key = await auditor(
        sessionmaker,
        "aud-1",
        work_markets=sorted({event["market"] for event in audited}),
        languages=sorted({event["language"] for event in audited}),
    )
    judged: dict[str, dict[str, Any]] = {}
    for _ in range(len(audited) + 1):
        claimed = await claim(client, key)
        if claimed.status_code == 204:
            break
        assert claimed.status_code == 200, claimed.text
        event_id = claimed.json()["decision"]["event_id"]
        body = planned[event_id].verdict
        answer = await verdict(client, key, claimed.json()["id"], **(body or {}))
        assert answer.status_code == 200, answer.text
        judged[event_id] = answer.json()
    assert set(judged) == set(planned), "every planned audit was claimed and judged"

    poc = await make_key(sessionmaker, "policy_poc", reviewer_id="poc-1")
    moderator_keys: dict[str, str] = {}
    for event in audited:
        case = planned[event["event_id"]]
        if case.ruling == "undisputed":
            continue
        disagreement = judged[event["event_id"]]["disagreement_id"]
        assert disagreement is not None, "only an incorrect verdict can be disputed"
        moderator = event["moderator_id"]
        if moderator not in moderator_keys:
            moderator_keys[moderator] = await make_key(
                sessionmaker, "moderator", reviewer_id=moderator
            )
        disputed = await client.post(
            f"/v1/disagreements/{disagreement}/dispute",
            json={"reason": "I followed the policy"},
            headers=auth(moderator_keys[moderator]),
        )
        assert disputed.status_code == 200, disputed.text
        ruled = await client.post(
            f"/v1/disagreements/{disagreement}/resolve",
            json={"outcome": case.ruling, "note": "ruled in a test"},
            headers=auth(poc),
        )
        assert ruled.status_code == 200, ruled.text
    return judged


def appeal(event_id: str, original_event_id: str, outcome: str, **fields: Any) -> dict[str, Any]:
    """An appeal outcome about the decision ``original_event_id``."""
    return {
        "event_id": event_id,
        "content_id": f"{original_event_id}-content",
        "original_event_id": original_event_id,
        "outcome": outcome,
        "decided_at": "2026-11-25T09:00:00Z",
        **fields,
    }


async def post_appeals(sender: SignedSender, events: list[dict[str, Any]]) -> None:
    """Post appeal outcomes over the signed appeals webhook (202 expected)."""
    body = orjson.dumps({"events": events})
    response = await sender.client.post(
        "/v1/webhooks/appeals", content=body, headers=sender.headers(body)
    )
    assert response.status_code == 202, response.text
