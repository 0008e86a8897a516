"""OpenID Connect sign-in to the console, against a real local provider (oidc-provider-mock).

DESIGN.md, "Web console": people sign in "through OpenID Connect when PLUMBLINE_OIDC_* is
configured", the role coming from a claim. The flow is the authorization code flow with
state, nonce and PKCE; the ID token is checked against the provider's keys.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from playwright.async_api import Page, expect
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit_api.console.oidc import (
    FLOW_COOKIE,
    Provider,
    _providers,
    _signing_algorithms,
    provider_for,
    role_from_claims,
    validate_id_token,
)
from shared.core.auth import Role
from shared.core.settings import Settings
from shared.models import User
from tests.conftest import LiveServer
from tests.support.console import make_person
from tests.support.oidc_provider import OidcProvider, running_oidc_provider

# The provider (oidc-provider-mock) uses Authlib APIs that Authlib itself deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENT_ID = "plumbline-console"
MAPPING = {"qa-team": "qa_auditor", "leads": "manager"}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with running_oidc_provider() as running:
        yield running


@pytest.fixture
async def oidc(live_server: LiveServer, provider: OidcProvider) -> AsyncIterator[OidcProvider]:
    """The live console configured for single sign-on with ``provider`` (for this test)."""
    before: Settings = live_server.app.state.settings
    live_server.app.state.settings = before.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": SecretStr("console-secret"),
            "oidc_role_mapping": MAPPING,
        }
    )
    provider.token_requests.clear()
    try:
        yield provider
    finally:
        live_server.app.state.settings = before


def _person(provider: OidcProvider, role_claim: object, *, email: str | None = None) -> str:
    sub = f"person-{uuid.uuid4().hex[:8]}"
    claims: dict[str, object] = {"email": email or f"{sub}@example.com"}
    if role_claim is not None:
        claims["plumbline_role"] = role_claim
    provider.set_user(sub, claims)
    return sub


async def _start(console: httpx.AsyncClient, next_url: str | None = None) -> str:
    """GET the start page: the provider's authorization URL it redirects to."""
    params = {"next": next_url} if next_url else None
    start = await console.get("/console/oidc/start", params=params)
    assert start.status_code == 303, start.text
    assert FLOW_COOKIE in start.cookies
    flow_cookie = start.headers["set-cookie"]
    assert "HttpOnly" in flow_cookie
    assert "samesite=lax" in flow_cookie.lower()
    return start.headers["location"]


async def _authorize(authorize_url: str, sub: str, *, deny: bool = False) -> str:
    """The person signs in at the provider: the callback URL it sends the browser to."""
    form = {"action": "deny"} if deny else {"sub": sub}
    async with httpx.AsyncClient(timeout=10) as browser_at_provider:
        answer = await browser_at_provider.post(authorize_url, data=form)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def _console(live_server: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live_server.url, timeout=30, follow_redirects=False)


async def test_single_sign_on_maps_the_role_claim_and_lands_on_the_daily_page(
    live_server: LiveServer,
    oidc: OidcProvider,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    sub = _person(oidc, "qa-team")
    async with await _console(live_server) as console:
        sign_in = await console.get("/console/sign-in")
        assert "/console/oidc/start" in sign_in.text
        authorize_url = await _start(console)
        query = parse_qs(urlsplit(authorize_url).query)
        assert authorize_url.startswith(oidc.issuer + "/oauth2/authorize?")
        assert query["client_id"] == [CLIENT_ID]
        assert query["response_type"] == ["code"]
        assert query["redirect_uri"] == [live_server.url + "/console/oidc/callback"]
        assert "openid" in query["scope"][0].split()
        assert query["code_challenge_method"] == ["S256"]
        assert query["state"][0]
        assert query["nonce"][0]

        callback = await console.get(await _authorize(authorize_url, sub))
        assert callback.status_code == 303, callback.text
        assert callback.headers["location"] == "/console/workbench"
        assert "plumbline_session" in callback.cookies
        account = await console.get("/console/account")
        assert account.status_code == 200
        assert f"{sub}@example.com" in account.text

    # PKCE: the token request carried the verifier whose S256 is the challenge sent before.
    (token_request,) = oidc.token_requests
    verifier = token_request["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge.rstrip(b"=").decode() == query["code_challenge"][0]
    async with sessionmaker() as session:
        user = await session.scalar(select(User).where(User.oidc_subject == sub))
    assert user is not None
    assert user.role == "qa_auditor"
    assert user.email == f"{sub}@example.com"


async def test_a_role_name_claim_links_an_account_an_admin_made_by_its_email(
    live_server: LiveServer,
    oidc: OidcProvider,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    person = await make_person(sessionmaker, "manager")
    sub = _person(oidc, "moderator", email=person.email)
    async with await _console(live_server) as console:
        authorize_url = await _start(console, next_url="/console/account")
        callback = await console.get(await _authorize(authorize_url, sub))
        assert callback.status_code == 303
        # The next page survives the round trip through the provider.
        assert callback.headers["location"] == "/console/account"
    async with sessionmaker() as session:
        user = await session.get(User, person.id)
    assert user is not None
    assert user.oidc_subject == sub
    # The provider's claim decides the role, every sign-in.
    assert user.role == "moderator"


async def test_a_person_without_a_mapped_role_is_refused_and_gets_no_session(
    live_server: LiveServer,
    oidc: OidcProvider,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for claim, language, says in (
        ("intern", "en", "no Plumbline role"),
        (None, "de", "keine Plumbline-Rolle"),
    ):
        sub = _person(oidc, claim)
        async with await _console(live_server) as console:
            console.headers["Accept-Language"] = language
            authorize_url = await _start(console)
            refused = await console.get(await _authorize(authorize_url, sub))
            assert refused.status_code == 403
            assert says in refused.text
            assert "plumbline_session" not in refused.cookies
            assert (await console.get("/console/account")).status_code == 303
        async with sessionmaker() as session:
            assert await session.scalar(select(User).where(User.oidc_subject == sub)) is None


async def test_a_forged_or_missing_state_is_refused(
    live_server: LiveServer, oidc: OidcProvider
) -> None:
    sub = _person(oidc, "leads")
    async with await _console(live_server) as console:
        authorize_url = await _start(console)
        callback_url = await _authorize(authorize_url, sub)
        code = parse_qs(urlsplit(callback_url).query)["code"][0]
        forged = await console.get(
            "/console/oidc/callback", params={"code": code, "state": "attacker-state"}
        )
        assert forged.status_code == 400
        assert "did not start here" in forged.text
        assert "plumbline_session" not in forged.cookies
    # A callback without the flow cookie (another browser: login CSRF) is refused too.
    async with await _console(live_server) as other_browser:
        foreign = await other_browser.get(callback_url)
        assert foreign.status_code == 400
        assert "plumbline_session" not in foreign.cookies
    # A tampered flow cookie cannot be read.
    async with await _console(live_server) as console:
        console.cookies.set(FLOW_COOKIE, "gAAAAAnot-a-sealed-flow", path="/console/oidc")
        tampered = await console.get(callback_url)
        assert tampered.status_code == 400


async def test_the_page_after_sign_in_is_never_another_site(
    live_server: LiveServer, oidc: OidcProvider
) -> None:
    for elsewhere in ("https://attacker.example/", "//attacker.example/console/"):
        sub = _person(oidc, "qa-team")
        async with await _console(live_server) as console:
            authorize_url = await _start(console, next_url=elsewhere)
            callback = await console.get(await _authorize(authorize_url, sub))
            assert callback.status_code == 303
            assert callback.headers["location"] == "/console/workbench"


async def test_a_replayed_callback_is_refused(live_server: LiveServer, oidc: OidcProvider) -> None:
    sub = _person(oidc, "leads")
    async with await _console(live_server) as console:
        authorize_url = await _start(console)
        flow = console.cookies[FLOW_COOKIE]
        callback_url = await _authorize(authorize_url, sub)
        first = await console.get(callback_url)
        assert first.status_code == 303
        assert first.headers["location"] == "/console/overview"
    # Whoever captured the callback URL and the flow cookie cannot use them again.
    async with await _console(live_server) as replayer:
        replayer.cookies.set(FLOW_COOKIE, flow, path="/console/oidc")
        again = await replayer.get(callback_url)
        assert again.status_code == 400
        assert "used already" in again.text
        assert "plumbline_session" not in again.cookies


async def test_the_provider_refusing_shows_a_clear_page(
    live_server: LiveServer, oidc: OidcProvider
) -> None:
    async with await _console(live_server) as console:
        authorize_url = await _start(console)
        denied = await console.get(await _authorize(authorize_url, "", deny=True))
        assert denied.status_code == 400
        assert "did not sign you in" in denied.text
        assert "plumbline_session" not in denied.cookies


async def test_an_unreachable_provider_gets_a_clear_page_and_no_redirect(
    live_server: LiveServer, oidc: OidcProvider
) -> None:
    settings: Settings = live_server.app.state.settings
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    live_server.app.state.settings = settings.model_copy(update={"oidc_issuer": nowhere})
    async with await _console(live_server) as console:
        start = await console.get("/console/oidc/start")
        assert start.status_code == 502
        assert "cannot be reached" in start.text
        assert FLOW_COOKIE not in start.cookies


async def test_without_configuration_both_routes_are_not_found(live_server: LiveServer) -> None:
    async with await _console(live_server) as console:
        assert (await console.get("/console/oidc/start")).status_code == 404
        assert (
            await console.get("/console/oidc/callback", params={"code": "c", "state": "s"})
        ).status_code == 404
        assert "/console/oidc/start" not in (await console.get("/console/sign-in")).text


def _settings(**update: object) -> Settings:
    values: dict[str, object] = {
        "oidc_issuer": "https://id.example.com",
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": SecretStr("s"),
        **update,
    }
    return Settings.model_validate(values)


@pytest.mark.no_db
def test_the_role_claim_maps_through_the_mapping_first_then_as_a_role_name() -> None:
    settings = _settings(oidc_role_mapping={"qa-team": "qa_auditor", "manager": "admin"})
    assert role_from_claims({"plumbline_role": "qa-team"}, settings) is Role.QA_AUDITOR
    assert role_from_claims({"plumbline_role": "manager"}, settings) is Role.ADMIN
    assert role_from_claims({"plumbline_role": "moderator"}, settings) is Role.MODERATOR
    assert role_from_claims({"plumbline_role": ["x", "qa-team"]}, settings) is Role.QA_AUDITOR
    assert role_from_claims({"plumbline_role": "intern"}, settings) is None
    assert role_from_claims({"plumbline_role": 3}, settings) is None
    assert role_from_claims({}, settings) is None
    other_claim = _settings(oidc_role_claim="groups")
    assert role_from_claims({"groups": ["policy_poc"]}, other_claim) is Role.POLICY_POC


@pytest.mark.no_db
def test_the_id_token_is_checked_for_signature_issuer_audience_expiry_and_nonce() -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    provider = Provider(
        issuer="https://id.example.com",
        authorization_endpoint="https://id.example.com/authorize",
        token_endpoint="https://id.example.com/token",
        algorithms=("RS256",),
        jwks=KeySet([key]),
        fetched_at=0.0,
    )
    now = int(time.time())
    good = {
        "iss": "https://id.example.com",
        "sub": "someone",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
    }

    def token(claims: dict[str, object], signer: RSAKey = key) -> str:
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, signer)

    checked = validate_id_token(token(good), provider=provider, client_id=CLIENT_ID, nonce="n-1")
    assert checked["sub"] == "someone"
    wrong = [
        token(good, signer=stranger),
        token({**good, "iss": "https://evil.example.com"}),
        token({**good, "aud": "another-client"}),
        token({**good, "aud": [CLIENT_ID, "another-client"]}),
        token({**good, "exp": now - 3600}),
        token({**good, "nonce": "n-2"}),
        token({key: value for key, value in good.items() if key != "nonce"}),
    ]
    for id_token in wrong:
        with pytest.raises(JoseError):
            validate_id_token(id_token, provider=provider, client_id=CLIENT_ID, nonce="n-1")


async def test_keys_rotated_since_they_were_cached_are_fetched_again(
    live_server: LiveServer, oidc: OidcProvider
) -> None:
    settings: Settings = live_server.app.state.settings
    cached = await provider_for(settings)
    stale = RSAKey.generate_key(2048, parameters={"kid": "retired-key"})
    _providers[oidc.issuer] = dataclasses.replace(cached, jwks=KeySet([stale]))
    sub = _person(oidc, "leads")
    async with await _console(live_server) as console:
        callback = await console.get(await _authorize(await _start(console), sub))
        assert callback.status_code == 303, callback.text
        assert callback.headers["location"] == "/console/overview"
    assert _providers[oidc.issuer].jwks is not cached.jwks


@pytest.mark.no_db
def test_id_tokens_signed_without_a_private_key_are_never_accepted() -> None:
    assert _signing_algorithms({"id_token_signing_alg_values_supported": ["HS256", "RS256"]}) == (
        "RS256",
    )
    assert _signing_algorithms({}) == ("RS256",)
    with pytest.raises(ValueError, match="no asymmetric algorithm"):
        _signing_algorithms({"id_token_signing_alg_values_supported": ["none", "HS256"]})


async def test_discovery_is_cached(provider: OidcProvider) -> None:
    settings = _settings(oidc_issuer=provider.issuer + "/")
    first = await provider_for(settings)
    assert first.token_endpoint == provider.issuer + "/oauth2/token"
    assert await provider_for(settings) is first
    assert await provider_for(settings, refresh=True) is not first


async def test_single_sign_on_in_a_browser(
    page: Page, oidc: OidcProvider, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sub = _person(oidc, "leads")
    # The provider's page styles itself from a CDN this machine cannot reach.
    await page.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    await page.goto("/console/sign-in")
    await page.get_by_role("link", name="Sign in with single sign-on").click()
    await page.get_by_placeholder("sub").fill(sub)
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url("**/console/overview")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert cookies["plumbline_session"]["httpOnly"] is True
    assert FLOW_COOKIE not in cookies
    await page.goto("/console/account")
    await expect(page.get_by_text(f"{sub}@example.com").first).to_be_visible()
