"""Microsoft Teams through a Workflows webhook: the Adaptive Card message, optionally with
an Entra ID bearer token.

A channel with OAuth client credentials gets a token by the client-credentials grant
(``POST token_url`` with ``grant_type=client_credentials``, the client id and secret and an
optional scope) and sends it as ``Authorization: Bearer``. Tokens are cached per notifier
process until ``TOKEN_REFRESH_MARGIN_SECONDS`` before they expire; a 401 from the workflow
drops the cached token and the message is sent once more with a fresh one. A token endpoint
that refuses the credentials fails the attempt with its status (a 4xx is permanent, a 5xx or
no answer retried). Neither the token nor the client secret is logged or stored in errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import ClassVar

import httpx
import orjson

from services.notifier.channels.base import (
    HttpAnswer,
    HttpChannelAdapter,
    OutgoingMessage,
    RenderedMessage,
    excerpt_of,
)
from services.notifier.templates.parts import MessageParts
from services.notifier.templates.teams import TEAMS_CONTENT_TYPE, render_teams
from shared.channels.credentials import OAuthClientCredentials
from shared.core.observability import redact
from shared.core.settings import Settings
from shared.deliveries.lifecycle import SendResult

TOKEN_REFRESH_MARGIN_SECONDS = 60.0
# When the token endpoint does not say how long its token lives.
DEFAULT_TOKEN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class CachedToken:
    access_token: str
    refresh_at: float
    """``time.monotonic()`` after which a fresh token is fetched."""


class TeamsAdapter(HttpChannelAdapter):
    """The ``teams`` channel kind."""

    kind: ClassVar[str] = "teams"

    def __init__(self, http: httpx.AsyncBaseTransport, *, settings: Settings) -> None:
        super().__init__(http, settings=settings)
        self._tokens: dict[OAuthClientCredentials, CachedToken] = {}
        self._token_locks: dict[OAuthClientCredentials, asyncio.Lock] = {}

    @classmethod
    def render_parts(cls, parts: MessageParts) -> RenderedMessage:
        return RenderedMessage(body=render_teams(parts), content_type=TEAMS_CONTENT_TYPE)

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the card, with a bearer token when the channel has OAuth credentials."""
        oauth = message.credentials.oauth
        if oauth is None:
            return await self._post_card(message, token=None)
        token = await self._token(oauth)
        if isinstance(token, SendResult):
            return token
        result = await self._post_card(message, token=token)
        if result.status_code == 401:
            # Revoked or rotated early: one more try with a token fetched now.
            self._tokens.pop(oauth, None)
            token = await self._token(oauth)
            if isinstance(token, SendResult):
                return token
            result = await self._post_card(message, token=token)
        return result

    async def _post_card(self, message: OutgoingMessage, *, token: str | None) -> SendResult:
        headers = {"Content-Type": message.content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        answer = await self.post(message.target, body=message.body, headers=headers)
        if isinstance(answer, SendResult):
            return answer
        result = self.result_of(answer)
        if token is None or (result.error is None and result.response_excerpt is None):
            return result
        # A target echoing the request back must not put the bearer token in an error.
        return dataclasses.replace(
            result,
            error=redact(result.error, token) if result.error is not None else None,
            response_excerpt=(
                redact(result.response_excerpt, token)
                if result.response_excerpt is not None
                else None
            ),
        )

    async def _token(self, oauth: OAuthClientCredentials) -> str | SendResult:
        """A valid bearer token for ``oauth`` (cached), or the failed attempt."""
        cached = self._tokens.get(oauth)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.access_token
        lock = self._token_locks.setdefault(oauth, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(oauth)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.access_token
            fetched = await self._fetch_token(oauth)
            if isinstance(fetched, CachedToken):
                self._tokens[oauth] = fetched
                return fetched.access_token
            return fetched

    async def _fetch_token(self, oauth: OAuthClientCredentials) -> CachedToken | SendResult:
        form = {
            "grant_type": "client_credentials",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
        }
        if oauth.scope is not None:
            form["scope"] = oauth.scope
        answer = await self.post(
            oauth.token_url,
            body=str(httpx.QueryParams(form)).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        if isinstance(answer, SendResult):
            return SendResult(
                status_code=None,
                error=f"token endpoint: {answer.error}",
                duration_ms=answer.duration_ms,
            )
        token = _read_token(answer)
        if token is None:
            excerpt = excerpt_of(answer.body) if answer.status_code >= 300 else None
            detail = f": {excerpt}" if excerpt else ""
            # A 2xx without a token is the endpoint's fault, not the credentials': retried.
            status = answer.status_code if answer.status_code >= 300 else 502
            return SendResult(
                status_code=status,
                error=f"token endpoint: HTTP {answer.status_code}{detail}"[:500],
                duration_ms=answer.duration_ms,
            )
        access_token, lifetime = token
        refresh_in = max(lifetime - TOKEN_REFRESH_MARGIN_SECONDS, 0.0)
        return CachedToken(access_token=access_token, refresh_at=time.monotonic() + refresh_in)


def _read_token(answer: HttpAnswer) -> tuple[str, float] | None:
    """``(access_token, seconds it lives)`` from a token endpoint's 2xx JSON answer."""
    if not 200 <= answer.status_code < 300:
        return None
    try:
        document = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("access_token"), str):
        return None
    expires_in = document.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else DEFAULT_TOKEN_SECONDS
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_SECONDS
    return document["access_token"], lifetime
