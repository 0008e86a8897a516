"""Encryption at rest for secrets we must be able to read back (HMAC keys, chat URLs)."""

from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from shared.core.settings import Settings


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) over UTF-8 strings."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise RuntimeError(
                "secret cannot be decrypted: wrong PLUMBLINE_ENCRYPTION_KEY"
            ) from exc


def _key_file_key(data_dir: Path) -> bytes:
    path = data_dir / "encryption.key"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: when several processes start at once, one writes and the others read its key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=4)
def _box(key: bytes) -> SecretBox:
    return SecretBox(key)


def _encryption_key(settings: Settings) -> bytes:
    if settings.encryption_key is not None:
        return settings.encryption_key.get_secret_value().encode()
    return _key_file_key(settings.data_dir.resolve())


def secret_box(settings: Settings) -> SecretBox:
    """The box for the configured key, or for the key file under the data directory."""
    return _box(_encryption_key(settings))


def derived_key(settings: Settings, *, purpose: str) -> bytes:
    """A secret key for one ``purpose``, derived from the encryption key (HMAC-SHA256).

    As secret as the encryption key and the same on every replica; knowing one purpose's key
    tells nothing about another's or about the encryption key.
    """
    return _derive(_encryption_key(settings), purpose)


@lru_cache(maxsize=16)
def _derive(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, f"plumbline:{purpose}".encode(), hashlib.sha256).digest()


def golden_selection_key(settings: Settings) -> bytes:
    """The key choosing which claims hand out golden items (``PLUMBLINE_GOLDEN_SELECTION_KEY``,
    else derived from the encryption key)."""
    if settings.golden_selection_key is not None:
        return settings.golden_selection_key.get_secret_value().encode()
    return derived_key(settings, purpose="golden-selection")
