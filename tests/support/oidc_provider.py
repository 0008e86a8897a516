"""A real local OpenID Connect provider for the console's single sign-on tests.

``oidc-provider-mock`` is a Flask app (Authlib's authorization server underneath): served
by werkzeug in a thread on a free port. Its users' claims are set with ``PUT /users/<sub>``
and a person "signs in" by posting ``sub`` to its authorization form. Every request to its
token endpoint is recorded, so the tests can check what the console sent (PKCE verifier).
"""

from __future__ import annotations

import io
import socket
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import werkzeug.serving

with warnings.catch_warnings():
    # It imports authlib.jose, which Authlib deprecates (and sets to warn "always").
    import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from oidc_provider_mock import app as provider_app  # type: ignore[import-untyped]

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass
class OidcProvider:
    """The running provider: its issuer URL and the token requests it received."""

    issuer: str
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def set_user(self, sub: str, claims: dict[str, object]) -> None:
        """The claims the provider puts into the ID token of ``sub``."""
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text


class _RecordTokenRequests:
    """WSGI middleware: keep the form of every POST to the token endpoint."""

    def __init__(self, app: WsgiApp, provider: OidcProvider) -> None:
        self.app = app
        self.provider = provider

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/oauth2/token" and environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            form = parse_qs(body.decode())
            self.provider.token_requests.append({k: v[0] for k, v in form.items()})
            environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_oidc_provider() -> Iterator[OidcProvider]:
    """The provider on ``http://127.0.0.1:<free port>`` (nonce required), stopped after."""
    port = _free_port()
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}")
    flask_app = provider_app(require_nonce=True)
    server = werkzeug.serving.make_server(
        "127.0.0.1", port, _RecordTokenRequests(flask_app, provider), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
