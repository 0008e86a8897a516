"""Policy updates: write, publish, acknowledge (``/v1/policy-updates``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/policy-updates", tags=["policy updates"])
