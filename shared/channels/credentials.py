"""What a channel needs to deliver beyond its target: its secrets and signing options.

Stored encrypted in ``Channel.secret_encrypted``, as one document, because every part of it
is either a secret (a signing secret, an OAuth client secret) or says how secrets are used.
A channel whose only setting is a signing secret stores that secret as is (the form every
channel had before options existed, and the one source correction channels still write);
anything more is stored as JSON behind ``STRUCTURED_PREFIX``. ``decode_credentials`` reads
both forms.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Not a valid start of a supplied secret in practice, and checked: a supplied secret that
# begins with it is refused at creation (see shared.channels.service).
STRUCTURED_PREFIX = "plumbline-channel-credentials:v1:"


class OAuthClientCredentials(BaseModel):
    """An OAuth 2.0 client-credentials grant: the bearer token a Teams Workflows URL may
    require (Microsoft Entra ID), fetched from ``token_url`` and sent with each message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None


class ChannelCredentials(BaseModel):
    """A channel's delivery secrets and options (all optional; which apply depends on kind).

    - ``secret``: the HMAC key of a ``webhook`` channel, the signing secret of a ``lark`` bot.
    - ``standard_webhooks``: a ``webhook`` channel also sends the Standard Webhooks headers.
    - ``oauth``: a ``teams`` channel fetches a bearer token for each message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: str | None = None
    standard_webhooks: bool = False
    oauth: OAuthClientCredentials | None = None

    @property
    def is_empty(self) -> bool:
        return self.secret is None and not self.standard_webhooks and self.oauth is None


def encode_credentials(credentials: ChannelCredentials) -> str | None:
    """The plaintext to encrypt for ``credentials``; None when there is nothing to store."""
    if credentials.is_empty:
        return None
    only_a_secret = not credentials.standard_webhooks and credentials.oauth is None
    if credentials.secret is not None and only_a_secret:
        return credentials.secret
    return STRUCTURED_PREFIX + credentials.model_dump_json(exclude_defaults=True)


def decode_credentials(plaintext: str | None) -> ChannelCredentials:
    """The credentials stored as ``plaintext`` (a bare secret, or the structured form)."""
    if plaintext is None:
        return ChannelCredentials()
    if plaintext.startswith(STRUCTURED_PREFIX):
        return ChannelCredentials.model_validate_json(plaintext[len(STRUCTURED_PREFIX) :])
    return ChannelCredentials(secret=plaintext)
