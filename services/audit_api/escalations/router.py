"""Escalation rules and RCA escalations (``/v1/escalation-rules``, ``/v1/escalations``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["escalations"])
