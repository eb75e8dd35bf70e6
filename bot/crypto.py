"""Keys derived from BOT_SECRET_KEY: AEAD sealing of personal data and keyed hashes for look-ups.

A NIK is never stored in clear: it is sealed (AES-256-GCM) where it must be read back and
hashed (HMAC-SHA256) where it is only compared or joined.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# The first byte of every sealed value names the key version, so keys can rotate later.
_KEY_VERSION = 1
_NONCE_BYTES = 12


class SealBroken(ValueError):
    """A sealed value was tampered with, or sealed with another key."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@dataclass(frozen=True, slots=True)
class KeyRing:
    sealing_key: bytes = field(repr=False)
    hashing_key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: str) -> KeyRing:
        material = secret.encode("utf-8")
        return cls(
            sealing_key=_derive(material, b"bansos-bot/seal/v1"),
            hashing_key=_derive(material, b"bansos-bot/hash/v1"),
        )

    def keyed_hash(self, purpose: str, value: str) -> str:
        """A stable pseudonym of `value` for look-ups; `purpose` keeps domains apart."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self.hashing_key, message, hashlib.sha256).hexdigest()

    def nik_hash(self, nik: str) -> str:
        return self.keyed_hash("nik", nik)

    def nik_hasher(self) -> Callable[[str], str]:
        """`nik_hash` for many NIKs in a row: the key schedule is computed once."""
        prefix = hmac.new(self.hashing_key, b"nik\x00", hashlib.sha256)

        def nik_hash(nik: str) -> str:
            mac = prefix.copy()
            mac.update(nik.encode())
            return mac.hexdigest()

        return nik_hash

    def address_hash(self, channel: str, address: str) -> str:
        return self.keyed_hash(f"address:{channel}", address)

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt and authenticate; `context` binds the value to where it is stored."""
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(self.sealing_key).encrypt(nonce, plaintext, context.encode())
        return bytes([_KEY_VERSION]) + nonce + ciphertext

    def unseal(self, sealed: bytes, *, context: str) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES or sealed[0] != _KEY_VERSION:
            raise SealBroken("unknown key version or truncated value")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return AESGCM(self.sealing_key).decrypt(nonce, ciphertext, context.encode())
        except InvalidTag:
            raise SealBroken("sealed value does not authenticate") from None
