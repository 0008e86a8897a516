"""Liveness, readiness and metrics. No auth: load balancers and Prometheus call these."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from services.audit_api.deps import PROBE
from services.audit_api.metrics import REGISTRY
from services.audit_api.problems import problem_response
from shared.core.migrate import alembic_config

router = APIRouter(tags=["health"], dependencies=[Depends(PROBE)])


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The newest migrations this code expects (read once from the scripts)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _database_problem(request: Request) -> str | None:
    try:
        async with request.app.state.engine.connect() as connection:
            rows = await connection.scalars(text("SELECT version_num FROM alembic_version"))
            current = frozenset(rows)
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    if current != head_revisions():
        expected = ", ".join(sorted(head_revisions()))
        return f"database schema at {', '.join(sorted(current))}, expected {expected}: migrate"
    return None


async def _redis_problem(request: Request) -> str | None:
    try:
        await asyncio.wait_for(request.app.state.redis.ping(), timeout=2)
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


@router.get("/readyz", responses={503: {"description": "Not ready; the detail says why."}})
async def readyz(request: Request) -> Response:
    """Database and Redis reachable, migrations current; 503 with the reasons otherwise."""
    problems = [
        problem
        for problem in await asyncio.gather(_database_problem(request), _redis_problem(request))
        if problem
    ]
    if problems:
        return problem_response(status=503, detail="; ".join(problems))
    return Response(content=b'{"status":"ready"}', media_type="application/json")


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics() -> Response:
    """Prometheus text format."""
    return Response(content=generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
