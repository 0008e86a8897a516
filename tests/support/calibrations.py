"""Builders for calibration sessions (``POST /v1/calibrations``)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import auth

CATEGORIES = ["hate_speech", "harassment", "no_violation"]


def calibration_body(**overrides: Any) -> dict[str, Any]:
    """A DE session over two items (one with a golden label) for participants A, B, C."""
    body: dict[str, Any] = {
        "title": "Hate speech, week 48",
        "market": "DE",
        "categories": CATEGORIES,
        "items": [{"content_id": "v1", "golden": "hate_speech"}, {"content_id": "v2"}],
        "participants": ["A", "B", "C"],
    }
    body.update(overrides)
    return body


async def create_calibration(
    client: httpx.AsyncClient, key: str, **overrides: Any
) -> dict[str, Any]:
    """Create ``calibration_body(**overrides)`` with ``key``; the stored session."""
    response = await client.post(
        "/v1/calibrations", json=calibration_body(**overrides), headers=auth(key)
    )
    assert response.status_code == 201, response.text
    calibration: dict[str, Any] = response.json()
    return calibration


async def label(
    client: httpx.AsyncClient, key: str, calibration_id: str, labels: dict[str, str]
) -> httpx.Response:
    """``PUT`` a participant's labels (content id → label) on a session."""
    return await client.put(
        f"/v1/calibrations/{calibration_id}/labels",
        json={"labels": [{"content_id": c, "label": v} for c, v in labels.items()]},
        headers=auth(key),
    )
