"""Keys derived from BOT_SECRET_KEY: AEAD sealing of personal data and keyed hashes for look-ups.

A NIK is never stored in clear: it is sealed (AES-256-GCM) where it must be read back and
hashed (HMAC-SHA256) where it is only compared or joined. Hashes are joined on, so the
hashing key never changes; sealing keys rotate (bot/key_store.py, bot/key_rotation.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.key_store import (
    FIRST_KEY_ID,
    FileSignature,
    KeyFileBroken,
    SealingKeys,
    file_signature,
    read_keys,
)

log = logging.getLogger(__name__)

_NONCE_BYTES = 12
# The HKDF labels of the two keys BOT_SECRET_KEY gives: changing either loses every value.
_HASHING_PURPOSE = b"bansos-bot/hash/v1"
_FIRST_SEALING_PURPOSE = b"bansos-bot/seal/v1"

# How often a running process looks at the key file for a new current key: one stat()
# per second at most is nothing, and a rotation waits longer than this before re-sealing.
RELOAD_INTERVAL_S = 1.0


class SealBroken(ValueError):
    """A sealed value was tampered with, sealed with another key, or under a retired key."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@dataclass(frozen=True, slots=True)
class _Sealing:
    """One consistent view of the sealing keys: swapped whole, never changed in place."""

    current: int
    keys: Mapping[int, bytes]

    @classmethod
    def of(cls, first_key: bytes, stored: SealingKeys) -> _Sealing:
        every = {FIRST_KEY_ID: first_key, **stored.stored}
        usable = {i: key for i, key in every.items() if i in stored.usable_ids}
        return cls(current=stored.current, keys=MappingProxyType(usable))


class KeyRing:
    """The hashing key and the sealing keys by id; the first byte of a sealed value is the
    id of the key that sealed it.

    Loaded from a key file (`load`), the ring notices a rotation by itself: before sealing
    or unsealing it stats the file, at most once per RELOAD_INTERVAL_S, and re-reads it
    when its inode, mtime or size changed (the file is only ever replaced whole). A value
    under an id the ring does not know makes it look at once, so a value sealed by a
    process that saw the new key first still opens.
    """

    __slots__ = (
        "_first_sealing_key",
        "_hashing_key",
        "_keys_file",
        "_next_check",
        "_reload_interval_s",
        "_sealing",
        "_signature",
    )

    def __init__(
        self,
        *,
        hashing_key: bytes,
        first_sealing_key: bytes,
        sealing: SealingKeys,
        keys_file: Path | None = None,
        reload_interval_s: float = RELOAD_INTERVAL_S,
    ) -> None:
        self._hashing_key = hashing_key
        self._first_sealing_key = first_sealing_key
        self._sealing = _Sealing.of(first_sealing_key, sealing)
        self._keys_file = keys_file
        self._reload_interval_s = reload_interval_s
        self._signature: FileSignature | None = None
        self._next_check = 0.0

    @classmethod
    def from_secret(cls, secret: str) -> KeyRing:
        """Key 1 alone, sealing; no key file is read."""
        material = secret.encode("utf-8")
        return cls(
            hashing_key=_derive(material, _HASHING_PURPOSE),
            first_sealing_key=_derive(material, _FIRST_SEALING_PURPOSE),
            sealing=SealingKeys(),
        )

    @classmethod
    def load(
        cls, secret: str, keys_file: Path, *, reload_interval_s: float = RELOAD_INTERVAL_S
    ) -> KeyRing:
        """The ring of a running process: key 1 from `secret`, the others from `keys_file`
        (none yet when it does not exist), following the file as it changes."""
        material = secret.encode("utf-8")
        signature = file_signature(keys_file)
        ring = cls(
            hashing_key=_derive(material, _HASHING_PURPOSE),
            first_sealing_key=_derive(material, _FIRST_SEALING_PURPOSE),
            sealing=read_keys(keys_file),
            keys_file=keys_file,
            reload_interval_s=reload_interval_s,
        )
        ring._signature = signature
        ring._next_check = time.monotonic() + reload_interval_s
        return ring

    def __repr__(self) -> str:
        return f"KeyRing(current={self._sealing.current}, usable={sorted(self._sealing.keys)})"

    @property
    def keys_file(self) -> Path | None:
        return self._keys_file

    @property
    def hashing_key(self) -> bytes:
        return self._hashing_key

    @property
    def sealing_key(self) -> bytes:
        """The key new values are sealed with."""
        return self._sealing.keys[self._sealing.current]

    @property
    def current_key_id(self) -> int:
        return self._sealing.current

    def reload(self) -> None:
        """Look at the key file now, not at the next interval."""
        self._refresh(now=True)

    def keyed_hash(self, purpose: str, value: str) -> str:
        """A stable pseudonym of `value` for look-ups; `purpose` keeps domains apart."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self._hashing_key, message, hashlib.sha256).hexdigest()

    def nik_hash(self, nik: str) -> str:
        return self.keyed_hash("nik", nik)

    def nik_hasher(self) -> Callable[[str], str]:
        """`nik_hash` for many NIKs in a row: the key schedule is computed once."""
        prefix = hmac.new(self._hashing_key, b"nik\x00", hashlib.sha256)

        def nik_hash(nik: str) -> str:
            mac = prefix.copy()
            mac.update(nik.encode())
            return mac.hexdigest()

        return nik_hash

    def address_hash(self, channel: str, address: str) -> str:
        return self.keyed_hash(f"address:{channel}", address)

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt and authenticate; `context` binds the value to where it is stored."""
        self._refresh()
        sealing = self._sealing
        nonce = os.urandom(_NONCE_BYTES)
        aead = AESGCM(sealing.keys[sealing.current])
        return bytes([sealing.current]) + nonce + aead.encrypt(nonce, plaintext, context.encode())

    def unseal(self, sealed: bytes, *, context: str) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES:
            raise SealBroken("truncated sealed value")
        self._refresh()
        key = self._sealing.keys.get(sealed[0])
        if key is None:
            self._refresh(now=True)
            key = self._sealing.keys.get(sealed[0])
        if key is None:
            raise SealBroken("sealed under an unknown or retired key")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, context.encode())
        except InvalidTag:
            raise SealBroken("sealed value does not authenticate") from None

    def _refresh(self, *, now: bool = False) -> None:
        if self._keys_file is None:
            return
        moment = time.monotonic()
        if not now and moment < self._next_check:
            return
        self._next_check = moment + self._reload_interval_s
        signature = file_signature(self._keys_file)
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            # The file is never deleted on purpose. Falling back to key 1 alone would make
            # every newer value unreadable: keep the keys in hand and say so.
            log.warning("sealing key file %s is gone; keeping the keys in use", self._keys_file)
            return
        try:
            stored = read_keys(self._keys_file)
        except (KeyFileBroken, OSError):
            log.warning(
                "sealing key file %s is unreadable; keeping the keys in use", self._keys_file
            )
            return
        self._sealing = _Sealing.of(self._first_sealing_key, stored)
        log.info("sealing keys reloaded: key %d seals new values", stored.current)
