"""Builders for sampling plans (``POST /v1/sampling-plans``)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import auth


def plan_body(**overrides: Any) -> dict[str, Any]:
    """A valid sampling plan for the DE video queue: 10 %, at least 2 per moderator."""
    body: dict[str, Any] = {"queue": "de-video-standard", "rate": 0.1, "min_per_moderator": 2}
    body.update(overrides)
    return body


async def create_sampling_plan(
    client: httpx.AsyncClient, key: str, **overrides: Any
) -> dict[str, Any]:
    """Create ``plan_body(**overrides)`` with ``key``; the stored plan."""
    response = await client.post(
        "/v1/sampling-plans", json=plan_body(**overrides), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    return plan
