"""Password hashing: argon2id (memory-hard), with the library's current parameters."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHasher()
# Verified against when the e-mail address is unknown, so a wrong address costs as long as a
# wrong password and the answer time does not tell which addresses have accounts.
_DECOY_HASH = _hasher.hash("plumbline decoy password")


def hash_password(password: str) -> str:
    """The argon2id PHC string of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; a missing hash verifies a decoy and answers False."""
    try:
        return _hasher.verify(password_hash or _DECOY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)
