"""OpenID Connect sign-in to the console (authorization code flow with PKCE).

``/console/oidc/start`` sends the browser to the identity provider with a fresh ``state``,
``nonce`` and PKCE verifier (S256), kept only in a short-lived cookie encrypted with a key
derived from the encryption key. ``/console/oidc/callback`` checks the state (once: Redis
remembers the states already spent), exchanges the code (Authlib), validates the ID token
(signature against the provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``; joserfc),
maps the role claim (``oidc_role_claim``: a role name or a key of ``oidc_role_mapping``)
and starts a session exactly like the password sign-in. Anything wrong: a 4xx page that
says what, and no session. Both routes are 404 while OIDC is not configured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from redis.exceptions import RedisError

from services.audit_api.console.session import (
    CONSOLE_PUBLIC,
    absolute_timeout,
    cookie_is_secure,
    safe_next,
)
from services.audit_api.console.sign_in import LANDING, start_session_cookie
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from shared.core.auth import Role
from shared.core.encryption import derived_key
from shared.core.errors import DomainError, NotFound
from shared.core.settings import Settings
from shared.users import service, sessions

# Authlib 1.9 warns at import that it would rather drive httpx2; the httpx it has works.
with warnings.catch_warnings():
    import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401 (installs its filter)

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/oidc")

FLOW_COOKIE = "plumbline_oidc"
FLOW_COOKIE_PATH = "/console/oidc"
# How long a person may spend at the identity provider between start and callback.
FLOW_TTL_SECONDS = 600
# Discovery document and JWKS are fetched again after this long (or on an unknown key id).
DISCOVERY_TTL_SECONDS = 3600.0
CLOCK_LEEWAY_SECONDS = 60
PROVIDER_TIMEOUT_SECONDS = 10.0
SPENT_STATE_PREFIX = "plumbline:oidc-state:"


@dataclass(frozen=True, slots=True)
class Provider:
    """What the console needs from the provider's discovery document, and its keys."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    algorithms: tuple[str, ...]
    jwks: KeySet
    fetched_at: float


_providers: dict[str, Provider] = {}


class OidcFailure(Exception):
    """A sign-in that cannot go on: ``reason`` picks the page's message, ``status`` its code."""

    def __init__(self, reason: str, status: int = 400, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.status = status
        self.detail = detail


def _issuer(settings: Settings) -> str:
    assert settings.oidc_issuer is not None
    return settings.oidc_issuer.rstrip("/")


async def _fetch_json(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await client.get(url)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer with a JSON object")
    return document


# ID tokens must be signed with the provider's private key: never "none", never an HMAC.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


def _signing_algorithms(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    allowed = tuple(alg for alg in ASYMMETRIC_ALGORITHMS if alg in offered)
    if not allowed:
        raise ValueError("the provider signs ID tokens with no asymmetric algorithm")
    return allowed


async def provider_for(settings: Settings, *, refresh: bool = False) -> Provider:
    """The provider's endpoints and keys, from ``<issuer>/.well-known/openid-configuration``
    (cached per issuer for ``DISCOVERY_TTL_SECONDS``)."""
    issuer = _issuer(settings)
    cached = _providers.get(issuer)
    if (
        cached is not None
        and not refresh
        and time.monotonic() - cached.fetched_at < DISCOVERY_TTL_SECONDS
    ):
        return cached
    try:
        async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_SECONDS) as client:
            metadata = await _fetch_json(client, issuer + "/.well-known/openid-configuration")
            if str(metadata.get("issuer", "")).rstrip("/") != issuer:
                raise ValueError("the discovery document names another issuer")
            jwks = KeySet.import_key_set(await _fetch_json(client, str(metadata["jwks_uri"])))  # type: ignore[arg-type]
        provider = Provider(
            issuer=str(metadata["issuer"]),
            authorization_endpoint=str(metadata["authorization_endpoint"]),
            token_endpoint=str(metadata["token_endpoint"]),
            algorithms=_signing_algorithms(metadata),
            jwks=jwks,
            fetched_at=time.monotonic(),
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError, JoseError) as exc:
        logger.warning("OpenID Connect discovery failed", extra={"issuer": issuer}, exc_info=exc)
        raise OidcFailure("provider_unreachable", status=502) from exc
    _providers[issuer] = provider
    return provider


def _flow_box(settings: Settings) -> Fernet:
    key = derived_key(settings, purpose="console-oidc-flow")
    return Fernet(base64.urlsafe_b64encode(key))


def _seal_flow(settings: Settings, flow: Mapping[str, str]) -> str:
    return _flow_box(settings).encrypt(json.dumps(dict(flow)).encode()).decode()


def _open_flow(settings: Settings, sealed: str | None) -> dict[str, str]:
    """The flow the start page sealed, or ``OidcFailure`` (missing, forged, or too old)."""
    if not sealed:
        raise OidcFailure("no_flow")
    try:
        flow = json.loads(_flow_box(settings).decrypt(sealed.encode(), ttl=FLOW_TTL_SECONDS))
    except (InvalidToken, ValueError) as exc:
        raise OidcFailure("no_flow") from exc
    if not isinstance(flow, dict) or not all(isinstance(v, str) for v in flow.values()):
        raise OidcFailure("no_flow")
    return flow


def _client(settings: Settings, redirect_uri: str) -> Any:
    assert settings.oidc_client_secret is not None
    return AsyncOAuth2Client(
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        scope=settings.oidc_scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=PROVIDER_TIMEOUT_SECONDS,
    )


def role_from_claims(claims: Mapping[str, object], settings: Settings) -> Role | None:
    """The role the ID token's ``oidc_role_claim`` maps to: through ``oidc_role_mapping``
    first, else the claim value as a role name. A list claim: its first value that maps."""
    value = claims.get(settings.oidc_role_claim)
    values = value if isinstance(value, list) else [value]
    for candidate in values:
        if not isinstance(candidate, str):
            continue
        name = settings.oidc_role_mapping.get(candidate, candidate)
        try:
            return Role(name)
        except ValueError:
            if candidate in settings.oidc_role_mapping:
                logger.warning(
                    "PLUMBLINE_OIDC_ROLE_MAPPING maps to an unknown role",
                    extra={"claim_value": candidate, "role": name},
                )
    return None


def validate_id_token(
    id_token: str, *, provider: Provider, client_id: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims once its signature (the provider's JWKS), issuer, audience,
    expiry and nonce are right; ``JoseError`` otherwise."""
    token = jwt.decode(id_token, provider.jwks, algorithms=list(provider.algorithms))
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    registry.validate(claims)
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != client_id:
        raise JoseError("the ID token is meant for several clients but not authorized for us")
    return claims


def _failure_page(request: Request, failure: OidcFailure) -> Response:
    response = render(
        request,
        "oidc/error.html",
        status_code=failure.status,
        headers={"Referrer-Policy": "no-referrer"},
        reason=failure.reason,
        status=failure.status,
        context=None,
    )
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response


def _require_oidc(settings: Settings) -> None:
    if not settings.oidc_enabled:
        raise NotFound("single sign-on is not configured")


@router.get("/start", dependencies=[Depends(CONSOLE_PUBLIC)])
async def start(
    request: Request,
    settings: SettingsDep,
    next: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    """Send the browser to the identity provider (state, nonce and PKCE in a sealed cookie)."""
    _require_oidc(settings)
    try:
        provider = await provider_for(settings)
    except OidcFailure as failure:
        return _failure_page(request, failure)
    redirect_uri = str(request.url_for("oidc_callback"))
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    async with _client(settings, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            provider.authorization_endpoint, state=state, code_verifier=verifier, nonce=nonce
        )
    flow = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "redirect_uri": redirect_uri,
        "next": safe_next(next),
    }
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        _seal_flow(settings, flow),
        max_age=FLOW_TTL_SECONDS,
        httponly=True,
        secure=cookie_is_secure(request),
        # Lax: the provider's redirect back is a top-level GET from another site.
        samesite="lax",
        path=FLOW_COOKIE_PATH,
    )
    return response


async def _spend_state(request: Request, state: str) -> None:
    """Each state admits one callback: a replayed one is refused. Without Redis the
    provider's one-time authorization code is what refuses a replay."""
    key = SPENT_STATE_PREFIX + hashlib.sha256(state.encode()).hexdigest()
    try:
        first = await request.app.state.redis.set(key, "1", nx=True, ex=FLOW_TTL_SECONDS + 60)
    except (RedisError, OSError) as exc:
        logger.warning("OpenID Connect state not recorded: Redis unreachable", exc_info=exc)
        return
    if not first:
        raise OidcFailure("replayed")


async def _exchange_code(
    settings: Settings, provider: Provider, flow: Mapping[str, str], code: str
) -> dict[str, Any]:
    """The ID token's validated claims for the authorization ``code``."""
    assert settings.oidc_client_id is not None
    try:
        async with _client(settings, flow["redirect_uri"]) as client:
            token = await client.fetch_token(
                provider.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=flow["verifier"],
            )
    except OAuthError as exc:
        raise OidcFailure("code_refused", detail=str(exc)) from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise OidcFailure("provider_unreachable", status=502) from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise OidcFailure("bad_id_token", detail="the provider sent no ID token")
    try:
        return validate_id_token(
            id_token, provider=provider, client_id=settings.oidc_client_id, nonce=flow["nonce"]
        )
    except (InvalidKeyIdError, BadSignatureError):
        # No key of the cached JWKS fits (none with the token's key id, or, for a provider
        # that names no key ids, none that verifies): its keys may have rotated. Once more
        # with the provider's current keys.
        provider = await provider_for(settings, refresh=True)
        try:
            return validate_id_token(
                id_token, provider=provider, client_id=settings.oidc_client_id, nonce=flow["nonce"]
            )
        except JoseError as again:
            raise OidcFailure("bad_id_token", detail=str(again)) from again
    except JoseError as exc:
        raise OidcFailure("bad_id_token", detail=str(exc)) from exc


@router.get("/callback", name="oidc_callback", dependencies=[Depends(CONSOLE_PUBLIC)])
async def callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Back from the provider: check the state, exchange the code, validate the ID token,
    map the role, and start a session like the password sign-in does."""
    _require_oidc(settings)
    try:
        if error is not None:
            # No code, so nothing to sign in with: shown whatever the state (some providers
            # leave it out of their error redirect).
            raise OidcFailure("provider_error", detail=error)
        flow = _open_flow(settings, request.cookies.get(FLOW_COOKIE))
        if not state or not secrets.compare_digest(state.encode(), flow["state"].encode()):
            raise OidcFailure("bad_state")
        await _spend_state(request, flow["state"])
        if not code:
            raise OidcFailure("provider_error", detail="no authorization code")
        provider = await provider_for(settings)
        claims = await _exchange_code(settings, provider, flow, code)
        role = role_from_claims(claims, settings)
        if role is None:
            raise OidcFailure("no_role", status=403)
        email = claims.get("email")
        # An e-mail address the provider says it has not verified links no existing account.
        if not isinstance(email, str) or claims.get("email_verified") in (False, "false"):
            email = None
        try:
            async with session.begin_nested():
                user = await service.sign_in_with_oidc(
                    session, subject=str(claims["sub"]), email=email, role=role
                )
        except DomainError as exc:
            raise OidcFailure("account_refused", status=exc.status, detail=exc.detail) from exc
    except OidcFailure as failure:
        logger.info(
            "OpenID Connect sign-in refused",
            extra={"reason": failure.reason, "detail": failure.detail},
        )
        return _failure_page(request, failure)
    _, token = await sessions.start_session(
        session, user=user, absolute_timeout=absolute_timeout(settings)
    )
    target = flow["next"]
    if target == "/console/":
        target = LANDING[role]
    response = RedirectResponse(target, status_code=303)
    start_session_cookie(response, request, token=token)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH)
    return response
