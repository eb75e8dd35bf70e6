"""The sealing-key file: random AES keys by id, which id seals new values, which are retired.

Key 1 is derived from BOT_SECRET_KEY and never written here; keys 2 to 255 are random and
live only in this file. The file is JSON, private (0600) and replaced atomically:

    {"format": 1, "current": 2, "keys": {"2": "<base64>"}, "retired": [1]}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIRST_KEY_ID = 1  # derived from BOT_SECRET_KEY
MAX_KEY_ID = 255  # the id is the first byte of every sealed value
KEY_BYTES = 32
_FORMAT = 1

# What identifies one version of the file: a replace makes a new inode, a write a new mtime.
FileSignature = tuple[int, int, int]


class KeyFileBroken(ValueError):
    """The key file cannot be read as a key file: it is not ours, or it was damaged."""


class KeyIdsExhausted(RuntimeError):
    """Every key id up to 255 has been used; ids are never reused."""


@dataclass(frozen=True, slots=True)
class SealingKeys:
    """What the key file says. `stored` holds the random keys (ids 2…255) still usable."""

    current: int = FIRST_KEY_ID
    stored: Mapping[int, bytes] = field(default_factory=dict, repr=False)
    retired: frozenset[int] = frozenset()

    @property
    def usable_ids(self) -> frozenset[int]:
        return frozenset({FIRST_KEY_ID, *self.stored}) - self.retired

    @property
    def rotating(self) -> bool:
        """A key other than the current one may still seal stored values."""
        return len(self.usable_ids) > 1

    def with_new_key(self) -> SealingKeys:
        """A fresh random key under the next unused id, made current."""
        new_id = max({FIRST_KEY_ID, *self.stored, *self.retired}) + 1
        if new_id > MAX_KEY_ID:
            raise KeyIdsExhausted(f"all {MAX_KEY_ID} sealing key ids have been used")
        return SealingKeys(
            current=new_id,
            stored={**self.stored, new_id: os.urandom(KEY_BYTES)},
            retired=self.retired,
        )

    def retiring_old(self) -> SealingKeys:
        """Only the current key stays: the others are dropped and their ids listed as
        retired (key 1 cannot be dropped, it follows from BOT_SECRET_KEY)."""
        old = self.usable_ids - {self.current}
        return SealingKeys(
            current=self.current,
            stored={i: key for i, key in self.stored.items() if i == self.current},
            retired=self.retired | old,
        )


def file_signature(path: Path) -> FileSignature | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def read_keys(path: Path) -> SealingKeys:
    """The keys in `path`; no file means key 1 alone."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return SealingKeys()
    try:
        return _parse(json.loads(raw))
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as problem:
        raise KeyFileBroken(f"{path} is not a valid sealing key file ({problem})") from None


def write_keys(path: Path, keys: SealingKeys) -> None:
    """Write the whole file anew and swap it in, so a reader sees the old or the new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = json.dumps(
        {
            "format": _FORMAT,
            "current": keys.current,
            "keys": {
                str(i): base64.b64encode(key).decode("ascii")
                for i, key in sorted(keys.stored.items())
            },
            "retired": sorted(keys.retired),
        },
        indent=2,
    ).encode()
    # mkstemp creates the file 0600, in the same folder so os.replace is atomic.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename itself must reach the disk: a key lost in a crash loses every value under it.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _parse(document: Any) -> SealingKeys:
    if document.get("format") != _FORMAT:
        raise ValueError("unknown format")
    stored = {
        _key_id(i): base64.b64decode(key, validate=True) for i, key in document["keys"].items()
    }
    retired = frozenset(_key_id(i) for i in document["retired"])
    keys = SealingKeys(current=_key_id(document["current"]), stored=stored, retired=retired)
    if FIRST_KEY_ID in stored:
        raise ValueError("key 1 follows from BOT_SECRET_KEY and is never stored")
    if any(len(key) != KEY_BYTES for key in stored.values()):
        raise ValueError(f"a key is not {KEY_BYTES} bytes")
    if retired & stored.keys():
        raise ValueError("a retired key is still stored")
    if keys.current not in keys.usable_ids:
        raise ValueError("the current key is missing or retired")
    return keys


def _key_id(value: Any) -> int:
    number = int(value)
    if not FIRST_KEY_ID <= number <= MAX_KEY_ID or str(number) != str(value):
        raise ValueError(f"key id {value!r} is not 1…255")
    return number
