"""Prometheus metrics of the API process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "plumbline_http_requests_total",
    "HTTP requests handled, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "plumbline_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
DECISIONS_ACCEPTED = Counter(
    "plumbline_decisions_accepted_total",
    "Decision events stored.",
    registry=REGISTRY,
)
DECISIONS_DUPLICATE = Counter(
    "plumbline_decisions_duplicate_total",
    "Decision events received again and not stored twice.",
    registry=REGISTRY,
)
WEBHOOKS_REJECTED = Counter(
    "plumbline_webhooks_rejected_total",
    "Decision webhooks refused, by status.",
    ["status"],
    registry=REGISTRY,
)
INTAKE_FLUSH_EVENTS = Histogram(
    "plumbline_intake_flush_events",
    "Events written per intake transaction (requests are coalesced under load).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
