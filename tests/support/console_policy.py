"""Test support for the policy POC's console pages: disputes made through the API (as a
moderator would), reviewer profiles, policy updates and questions created the API's way."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import SignedSender, auth, make_key
from tests.support.disagreements import Case, Sessionmaker, new_case

MARKET_FIELDS: dict[str, dict[str, str]] = {
    "DE": {"market": "DE", "queue": "de-video-standard", "language": "de"},
    "FR": {"market": "FR", "queue": "fr-video-standard", "language": "fr"},
}


async def disputed_case(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    n: int,
    *,
    market: str = "DE",
    moderator_id: str = "mod-42",
    reason: str = "The clip is news reporting.",
) -> Case:
    """An incorrect verdict's disagreement (``new_case``), disputed by its moderator through
    ``POST /v1/disagreements/{id}/dispute`` with the moderator's own key."""
    case = await new_case(
        sender,
        sessionmaker,
        n,
        fields={**MARKET_FIELDS[market], "moderator_id": moderator_id},
    )
    key = await make_key(sessionmaker, "moderator", reviewer_id=moderator_id)
    response = await client.post(
        f"/v1/disagreements/{case.disagreement_id}/dispute",
        json={"reason": reason},
        headers=auth(key),
    )
    assert response.status_code == 200, response.text
    return case


async def reviewer_profile(
    client: httpx.AsyncClient, admin_key: str, reviewer_id: str, markets: list[str]
) -> None:
    """A reviewer's profile (``PUT /v1/reviewers/{id}``): the readers of a market's updates."""
    response = await client.put(
        f"/v1/reviewers/{reviewer_id}",
        json={"markets": markets, "languages": ["de", "en"]},
        headers=auth(admin_key),
    )
    assert response.status_code in (200, 201), response.text


async def api_update(
    client: httpx.AsyncClient, key: str, *, publish: bool = False, **fields: Any
) -> dict[str, Any]:
    """A policy update written (and published) through ``/v1/policy-updates``."""
    body: dict[str, Any] = {
        "title": "Satire of public figures",
        "summary": "Satire is allowed unless it targets private persons.",
        "body": "Details of the satire policy.",
        "policy_codes": ["satire"],
        "markets": ["DE"],
        "effective_at": "2030-01-01T00:00:00Z",
        **fields,
    }
    response = await client.post("/v1/policy-updates", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    update: dict[str, Any] = response.json()
    if publish:
        published = await client.post(
            f"/v1/policy-updates/{update['id']}/publish", headers=auth(key)
        )
        assert published.status_code == 200, published.text
        update = published.json()
    return update
