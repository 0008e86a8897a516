"""Report schedules and their snapshots (``/v1/report-schedules``, ``/v1/report-snapshots``)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["report schedules"])
