"""The one settings class. Every knob of every service comes from here (env prefix PLUMBLINE_)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.stats.scores import check_severity_weights

MIN_BOOTSTRAP_ADMIN_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLUMBLINE_", extra="ignore")

    # None means "start the embedded server under data_dir" (see shared.core.embedded).
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".plumbline")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    # Addresses of the load balancers whose X-Forwarded-For / X-Forwarded-Proto the API
    # believes (uvicorn's forwarded_allow_ips: comma-separated IPs or networks, "*" for any).
    # Empty: the client is the connection's peer, so a client cannot pick its own address
    # for the per-client limits by sending the header.
    api_forwarded_allow_ips: str = ""

    # At least MIN_BOOTSTRAP_ADMIN_KEY_LENGTH characters: it is an admin credential.
    bootstrap_admin_key: SecretStr | None = None
    # Fernet key encrypting source and channel secrets at rest. Unset: a key file is created
    # under data_dir, which is fine for one machine; every replica of a deployment must share it.
    encryption_key: SecretStr | None = None

    insecure_target_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    log_level: str = "INFO"
    # JSON lines (true), human-readable lines (false), or unset: human-readable when stderr
    # is a terminal (someone is reading), JSON otherwise (a collector is).
    log_json: bool | None = None

    # HTTP limits, enforced before a request is read or authenticated. Webhooks have their
    # own body limit (webhook_max_body_bytes); a body must arrive within the timeout.
    api_max_body_bytes: int = Field(1024 * 1024, ge=1)
    request_body_timeout_seconds: float = Field(30.0, gt=0)
    # Rate limits, counted in Redis so that every API replica shares them; 0 turns one off.
    # Failed authentications (API keys and webhook signatures) per client IP, failed webhook
    # signatures per source, and requests per API key, each per window.
    rate_limit_window_seconds: int = Field(60, ge=1)
    auth_failures_per_client: int = Field(100, ge=0)
    signature_failures_per_source: int = Field(100, ge=0)
    requests_per_key: int = Field(6000, ge=0)
    # /metrics: off, open, or (with a token) only for "Authorization: Bearer <token>".
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    # /docs (Swagger UI, served from our own assets) and /openapi.json.
    docs_enabled: bool = True

    # Enough for every request in flight to keep a warm connection (with its prepared
    # statements): an overflow connection is opened and closed per request, at ~1 ms a time.
    database_pool_size: int = 20
    database_max_overflow: int = 10

    # Decision intake.
    webhook_tolerance_seconds: int = 300
    webhook_max_body_bytes: int = 1024 * 1024
    webhook_max_events: int = 1000
    source_cache_seconds: float = 5.0
    # A decision's ``decided_at`` may lie at most this far ahead of the server clock (clocks
    # drift); later is a 422.
    decided_at_future_tolerance_seconds: int = Field(300, ge=0)

    # The earliest date any input may name (a decision's ``decided_at``, a sampled day, a
    # report range): older is a 422. It keeps every stored time far inside the range Python
    # and each market's time zone can represent.
    earliest_date: date = date(2000, 1, 1)

    # Decision history: the report worker keeps the decisions' monthly partitions created
    # this many months ahead, and drops decisions older than decision_retention_days
    # (unset: kept forever) except audited ones; rollups are always kept.
    decision_partitions_ahead_months: int = Field(3, ge=0, le=120)
    decision_retention_days: int | None = Field(None, ge=1)

    # Analytics reports: the longest window one report may cover (a longer one is a 422).
    report_max_days: int = Field(366, ge=1, le=3660)
    # The quality score's weight of an error per severity (exactly these keys, positive),
    # as JSON in the environment: PLUMBLINE_SEVERITY_WEIGHTS='{"critical": 5, ...}'.
    severity_weights: dict[str, float] = Field(
        default_factory=lambda: {"critical": 5.0, "major": 3.0, "minor": 1.0}
    )

    # Outbox relay.
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.5
    # After a wake-up the relay waits this long before it claims: the rows of commits in
    # quick succession then move as one batch (one transaction, one Redis round trip, and
    # their events' fan-outs as one notifier job) instead of one batch per commit. 50 ms
    # against 10 ms at 500 events/s (notifier benchmark, two pairs): p99 6.0 / 3.9 s against
    # 12.2 / 12.6 s, half the relay's CPU; a message without a backlog waits up to 50 ms more.
    relay_linger_seconds: float = Field(default=0.05, ge=0, le=1)
    outbox_retention_hours: int = 24

    # Daily audits.
    claim_lease_minutes: int = 30
    dispute_window_hours: int = 72
    dispute_sla_hours: int = 24
    sampling_seed: str = "plumbline"

    # Golden items: the share of claims that hand out a golden item, and the weekly golden
    # accuracy below which ``auditor.accuracy_dropped`` is sent.
    golden_rate: float = Field(0.05, ge=0, le=1)
    # Keys which claims are golden turns. Unset: derived from the encryption key, so it is as
    # secret as that and shared by every replica; an auditor who could compute it could tell
    # golden audits from real ones.
    golden_selection_key: SecretStr | None = None
    auditor_accuracy_threshold: float = Field(0.9, ge=0, le=1)

    # Notifier deliveries.
    delivery_max_attempts: int = 8
    delivery_base_delay_seconds: float = 1.0
    delivery_max_delay_seconds: float = 300.0
    delivery_timeout_seconds: float = 10.0
    # An HTTP(S) proxy every chat and webhook delivery goes through, for a deployment whose
    # egress is proxied (http://user:password@proxy:3128). Deliveries read no proxy from the
    # environment (HTTPS_PROXY, .netrc): what leaves the notifier is this setting's choice.
    notifier_proxy_url: SecretStr | None = None
    # Where people open what a message is about: every chat and e-mail message links to
    # <public_url>/v1/<its object>.
    public_url: str = "http://127.0.0.1:8000"
    # E-mail channels: the SMTP server messages go through (STARTTLS when smtp_starttls).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Plumbline <plumbline@localhost>"
    smtp_starttls: bool = False
    # CA certificates (PEM) the SMTP server's certificate is checked against, for a server
    # with a private CA; unset: the system's.
    smtp_ca_file: Path | None = None
    # A test message (POST /v1/channels/{id}/test) waits this long beyond the send timeout
    # for the notifier's answer.
    channel_test_wait_seconds: float = Field(5.0, gt=0)
    # Messages a second per channel target, shared by every notifier process (Redis): the
    # chat services' own limits (Slack about 1, Lark about 5). A kind not listed is unlimited.
    # Env: PLUMBLINE_CHANNEL_RATE_PER_SECOND as JSON, e.g. {"slack": 1, "lark": 5}.
    channel_rate_per_second: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"slack": 1.0, "lark": 5.0, "teams": 2.0}
    )

    # Policy communication. A question unanswered this long sends policy_question.overdue;
    # reviewers who have not acknowledged an update are reminded this long before it takes
    # effect; a signed acknowledgement link in an e-mail works this long.
    policy_question_sla_hours: int = Field(24, ge=1, le=24 * 90)
    policy_update_reminder_hours: int = Field(24, ge=1, le=24 * 90)
    acknowledgement_link_ttl_hours: int = Field(24 * 14, ge=1, le=24 * 365)

    # Web console. Sessions end after this long without a request (idle) and this long after
    # sign-in whatever happens (absolute); a first-sign-in or reset link works this long;
    # sign-in attempts per e-mail address per minute (ten times as many per client address).
    console_idle_timeout_minutes: int = Field(30, ge=1, le=24 * 60)
    console_absolute_timeout_hours: int = Field(12, ge=1, le=24 * 30)
    password_link_ttl_hours: int = Field(72, ge=1, le=24 * 30)
    sign_in_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    # OpenID Connect sign-in, on when issuer, client id and secret are set. The role comes
    # from the ID token's ``oidc_role_claim``: its value is a role name, or a key of
    # ``oidc_role_mapping`` (claim value -> role). People without a mapped role are refused.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "plumbline_role"
    oidc_role_mapping: dict[str, str] = Field(default_factory=dict)

    @property
    def oidc_enabled(self) -> bool:
        """Whether the console offers OpenID Connect sign-in."""
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @field_validator("insecure_target_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _long_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty means unset (docker-compose passes `${VAR:-}`); short is refused at start-up.
        if value is not None and 0 < len(value.get_secret_value()) < MIN_BOOTSTRAP_ADMIN_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_BOOTSTRAP_ADMIN_KEY_LENGTH} characters (it is an admin "
                "credential); generate one with: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("severity_weights")
    @classmethod
    def _severity_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return check_severity_weights(value)

    @field_validator("database_url")
    @classmethod
    def _asyncpg_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return to_asyncpg_url(value)


def to_asyncpg_url(url: str) -> str:
    """Give a PostgreSQL URL the ``postgresql+asyncpg`` scheme SQLAlchemy needs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def settings_problems(exc: ValidationError) -> list[str]:
    """What is wrong with the environment's settings, one line per variable, without the
    values (one may be a secret)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        variable = "PLUMBLINE_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"{variable} {error['msg'].removeprefix('Value error, ')}")
    return lines


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
