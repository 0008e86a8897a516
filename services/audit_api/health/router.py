"""Liveness, readiness and metrics. No API key: load balancers and Prometheus call these.

``/metrics`` can be turned off or given its own bearer token (settings ``metrics_enabled``,
``metrics_token``): it tells an outsider the API's traffic and routes.
"""

from __future__ import annotations

import asyncio
import hmac
from functools import lru_cache
from typing import Literal

from alembic.script import ScriptDirectory
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from services.audit_api.deps import PROBE
from services.audit_api.metrics import REGISTRY
from services.audit_api.problems import DATABASE_RETRY_AFTER_SECONDS, problem_response
from shared.core.errors import NotFound, Unauthorized
from shared.core.migrate import alembic_config
from shared.core.settings import Settings

router = APIRouter(tags=["health"], dependencies=[Depends(PROBE)])

# A probe answers within a load balancer's timeout even when a server hangs.
_PROBE_TIMEOUT_SECONDS = 2.0


class Readiness(BaseModel):
    """Ready to serve; ``degraded`` lists what is down without stopping intake and reads."""

    status: Literal["ready"] = "ready"
    degraded: list[Literal["redis"]] = Field(
        default_factory=list,
        description="Redis down: intake and reads go on, the outbox holds the work.",
    )
    detail: str | None = None


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The newest migrations this code expects (read once from the scripts)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


async def _schema_revisions(request: Request) -> frozenset[str]:
    async with request.app.state.engine.connect() as connection:
        rows = await connection.scalars(text("SELECT version_num FROM alembic_version"))
        return frozenset(rows)


async def _database_problem(request: Request) -> str | None:
    try:
        current = await asyncio.wait_for(_schema_revisions(request), _PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    if current != head_revisions():
        expected = ", ".join(sorted(head_revisions()))
        return f"database schema at {', '.join(sorted(current))}, expected {expected}: migrate"
    return None


async def _redis_problem(request: Request) -> str | None:
    try:
        await asyncio.wait_for(request.app.state.redis.ping(), _PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "Not ready (database or migrations); the detail says why."}},
)
async def readyz(request: Request) -> Readiness | Response:
    """Database reachable and migrations current: 200, with ``"degraded": ["redis"]`` when
    only Redis is down (intake and reads keep working, the outbox holds the work, and a load
    balancer must not pull every replica during a Redis outage); 503 otherwise."""
    database, redis = await asyncio.gather(_database_problem(request), _redis_problem(request))
    if database is not None:
        return problem_response(
            status=503,
            detail="; ".join(problem for problem in (database, redis) if problem),
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if redis is not None:
        return Readiness(degraded=["redis"], detail=redis)
    return Readiness()


def _require_metrics_access(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if not settings.metrics_enabled:
        raise NotFound("metrics are turned off (PLUMBLINE_METRICS_ENABLED)")
    if settings.metrics_token is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Unauthorized("metrics need 'Authorization: Bearer <PLUMBLINE_METRICS_TOKEN>'")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        401: {"description": "A metrics token is set and was not given."},
        404: {"description": "Metrics are turned off."},
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus text format; may need a bearer token or be off (see the settings)."""
    _require_metrics_access(request)
    return Response(content=generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
