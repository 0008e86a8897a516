"""HMAC-SHA256 signatures of webhook bodies, in both directions.

The header is ``t=<unix seconds>,v1=<hex digest>`` where the digest is HMAC-SHA256 of
``"<t>.<raw body>"`` keyed by the shared secret. Signing the timestamp with the body stops a
captured request from being replayed later; several ``v1=`` values let a sender sign with an
old and a new secret while the secret is being rotated.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Plumbline-Signature"
SOURCE_HEADER = "X-Plumbline-Source"
MAX_TIMESTAMP_DIGITS = 12


def compute_digest(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed by ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Plumbline-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={compute_digest(secret, body, timestamp)}"


def parse_signature_header(header: str) -> tuple[int, list[str]] | None:
    """Split a signature header into its timestamp and its ``v1`` digests.

    Returns None when the header has no valid timestamp or no ``v1`` value; unknown
    schemes are ignored so that a future ``v2`` can be sent alongside ``v1``.
    """
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            # A second t= would make the signed timestamp ambiguous: reject the header.
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return None
            # Unix seconds have 10 digits until the year 2286; thousands of digits would make
            # int() raise (Python caps its digits) and could only be an attack.
            if len(value) > MAX_TIMESTAMP_DIGITS:
                return None
            timestamp = int(value)
        elif key == "v1" and value:
            digests.append(value.lower())
    if timestamp is None or not digests:
        return None
    return timestamp, digests


def verify_signature(
    secret_candidates: list[str], header: str, body: bytes, now: int, tolerance: int
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` by any of the secrets.

    The timestamp must be within ``tolerance`` seconds of ``now`` either way. Every
    (secret, digest) pair is compared in constant time and all pairs are always compared,
    so the response time says nothing about which part was wrong.
    """
    parsed = parse_signature_header(header)
    if parsed is None:
        return False
    timestamp, digests = parsed
    if abs(now - timestamp) > tolerance:
        return False
    matched = False
    for secret in secret_candidates:
        expected = compute_digest(secret, body, timestamp).encode("ascii")
        for digest in digests:
            # compare_digest needs equal types; non-ASCII input can never match anyway.
            candidate = digest.encode("ascii", errors="replace")
            matched |= hmac.compare_digest(expected, candidate)
    return matched
