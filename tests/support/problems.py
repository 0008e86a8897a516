"""RFC 9457 problem details as every error of the API answers them."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"].startswith("https://")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert "Traceback" not in response.text
    return body
