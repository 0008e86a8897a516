"""Policy questions: ask, answer, promote (``/v1/policy-questions``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/policy-questions", tags=["policy questions"])
