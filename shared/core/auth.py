"""Who is calling: the roles and the principal every entry point (API, console, jobs) uses."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """The roles an API key or a console user holds."""

    ADMIN = "admin"
    MANAGER = "manager"
    POLICY_POC = "policy_poc"
    QA_AUDITOR = "qa_auditor"
    MODERATOR = "moderator"


ALL_ROLES: tuple[Role, ...] = tuple(Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a key's role and, for reviewer-bound keys, the reviewer and markets.

    ``markets`` is None for a key that may see every market.
    """

    key_id: str
    role: Role
    reviewer_id: str | None
    markets: tuple[str, ...] | None

    def can_see_market(self, market: str) -> bool:
        """Whether objects of ``market`` lie inside this caller's markets."""
        return self.markets is None or market in self.markets


def token_digest(token: str) -> bytes:
    """SHA-256 of a credential token as stored: API keys, session cookies and one-time links
    carry 256 random bits, so a slow hash buys nothing and a lookup by digest is exact."""
    return hashlib.sha256(token.encode()).digest()
