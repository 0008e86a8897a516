"""The audit API: ``create_app()`` wires settings, database, Redis, routers and problems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from services.audit_api.appeals.router import router as appeals_router
from services.audit_api.audit_log.router import router as audit_log_router
from services.audit_api.audits.router import router as audits_router
from services.audit_api.auth.router import router as api_keys_router
from services.audit_api.calibrations.router import router as calibrations_router
from services.audit_api.channels.router import router as channels_router
from services.audit_api.console.router import install_console
from services.audit_api.corrections.router import router as corrections_router
from services.audit_api.decisions.router import router as decisions_router
from services.audit_api.decisions.writer import DecisionWriter
from services.audit_api.disagreements.router import router as disagreements_router
from services.audit_api.escalations.router import router as escalations_router
from services.audit_api.golden.router import router as golden_router
from services.audit_api.health.router import router as health_router
from services.audit_api.jobs.router import router as jobs_router
from services.audit_api.metrics_agreement.router import router as metrics_agreement_router
from services.audit_api.middleware import (
    BodyLimitMiddleware,
    FailedAuthLimitMiddleware,
    RequestContextMiddleware,
)
from services.audit_api.openapi import install_docs, install_openapi
from services.audit_api.policy_questions.router import router as policy_questions_router
from services.audit_api.policy_updates.router import router as policy_updates_router
from services.audit_api.problems import install_problem_handlers
from services.audit_api.quizzes.router import router as quizzes_router
from services.audit_api.rate_limits import RateLimits, create_redis_client
from services.audit_api.report_schedules.router import router as report_schedules_router
from services.audit_api.reports.router import router as reports_router
from services.audit_api.request_checks import check_request
from services.audit_api.reviewers.router import router as reviewers_router
from services.audit_api.sampling.router import router as sampling_router
from services.audit_api.sources.router import router as sources_router
from services.audit_api.training_plans.router import router as training_plans_router
from services.audit_api.users.router import router as users_router
from services.audit_api.wellbeing.router import router as wellbeing_router
from shared.api_keys.service import KeyCache
from shared.core.db import create_sessionmaker, engine_from_settings
from shared.core.encryption import secret_box
from shared.core.garbage_collection import tune_for_throughput
from shared.core.observability import configure_logging
from shared.core.settings import Settings, get_settings
from shared.sources.service import SourceDirectory

# How long an API key's principal is kept per process: a key revoked through another process
# is refused here within this time (at once through this one).
API_KEY_CACHE_SECONDS = 5.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application (uvicorn calls this with ``--factory``)."""
    settings = settings or get_settings()
    configure_logging(service="audit_api", level=settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from_settings(settings)
        sessionmaker = create_sessionmaker(engine)
        # Not the queue pool: the API only pings Redis and counts rate limits in it, and must
        # start and serve while Redis is down (the outbox holds the work meanwhile).
        redis = create_redis_client(settings)
        assert settings.database_url is not None
        writer = DecisionWriter(settings.database_url.replace("+asyncpg", "", 1))
        await writer.start()
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.redis = redis
        app.state.rate_limits = RateLimits(redis, settings)
        app.state.decision_writer = writer
        app.state.api_keys = KeyCache(ttl_seconds=API_KEY_CACHE_SECONDS)
        app.state.sources = SourceDirectory(
            sessionmaker, secret_box(settings), ttl_seconds=settings.source_cache_seconds
        )
        tune_for_throughput()
        try:
            yield
        finally:
            await writer.stop()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Plumbline",
        summary="Quality assurance for Trust & Safety moderation.",
        version="0.1.0",
        lifespan=lifespan,
        # Rules every operation's request meets (NUL, repeated parameters, JSON media type).
        dependencies=[Depends(check_request)],
        # /docs is ours (install_docs): FastAPI's loads Swagger UI from a third-party CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    install_openapi(app)
    if settings.docs_enabled:
        install_docs(app)
    # Added innermost first: requests pass RequestContext, FailedAuthLimit, BodyLimit.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.api_max_body_bytes,
        webhook_max_body_bytes=settings.webhook_max_body_bytes,
        timeout_seconds=settings.request_body_timeout_seconds,
    )
    app.add_middleware(FailedAuthLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    # Routes are matched in the order included, one by one: intake and the auditors' work
    # queue, the busiest operations, come first (no other route matches their paths), so a
    # claim or a verdict is not matched against the key and source administration first.
    app.include_router(decisions_router)
    app.include_router(audits_router)
    app.include_router(api_keys_router)
    app.include_router(sources_router)
    app.include_router(metrics_agreement_router)
    app.include_router(channels_router)
    app.include_router(disagreements_router)
    app.include_router(appeals_router)
    app.include_router(corrections_router)
    app.include_router(reports_router)
    app.include_router(audit_log_router)
    app.include_router(wellbeing_router)
    app.include_router(sampling_router)
    app.include_router(jobs_router)
    app.include_router(reviewers_router)
    app.include_router(quizzes_router)
    app.include_router(training_plans_router)
    app.include_router(calibrations_router)
    app.include_router(golden_router)
    app.include_router(policy_updates_router)
    app.include_router(policy_questions_router)
    app.include_router(escalations_router)
    app.include_router(report_schedules_router)
    app.include_router(users_router)
    install_console(app)
    return app
