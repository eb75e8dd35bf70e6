"""Content-addressed files on local disk: a blob is named by the SHA-256 of its bytes.

Writes are atomic (temp file, fsync, rename), so a reader never sees half a blob and two
processes storing the same bytes at once both succeed. Synchronous: callers in the event
loop wrap these calls in `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_DIR_MODE = 0o700
_TEMP_PREFIX = ".tmp-"


class BlobMissing(KeyError):
    """No blob is stored under this digest."""


class BlobCorrupt(ValueError):
    """The stored bytes no longer hash to the name they are stored under."""


class BlobStore:
    """Blobs under `root/ab/cd/<sha256>`, two levels of fan-out to keep directories small."""

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        self._root = root

    def path_for(self, sha256: str) -> Path:
        """Where the blob lives; anything but 64 lowercase hex digits is refused."""
        if not _SHA256_HEX.fullmatch(sha256):
            raise ValueError("blob name is not a lowercase hex SHA-256 digest")
        return self._root / sha256[:2] / sha256[2:4] / sha256

    def put(self, content: bytes) -> str:
        """Store `content` and return its digest; storing the same bytes again is a no-op."""
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.path_for(sha256)
        if self._holds(path, content):
            # Freshly used again (perhaps by a draft no row knows yet): sweeps go by age.
            os.utime(path)
            return sha256
        self._make_dirs(path.parent)
        self._write_atomically(path, content)
        return sha256

    def get(self, sha256: str) -> bytes:
        path = self.path_for(sha256)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        if hashlib.sha256(content).hexdigest() != sha256:
            raise BlobCorrupt(sha256)
        return content

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        """Remove the blob; False when there was none."""
        try:
            self.path_for(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def used_since(self, sha256: str, moment: float) -> bool:
        """Stored or stored again after `moment` (a POSIX time); False when absent."""
        try:
            return self.path_for(sha256).stat().st_mtime >= moment
        except FileNotFoundError:
            return False

    def older_than(self, moment: float) -> Iterator[str]:
        """Digests of blobs last stored before `moment` (a POSIX time)."""
        for path in self._root.glob("??/??/*"):
            name = path.name
            if _SHA256_HEX.fullmatch(name) and path.stat().st_mtime < moment:
                yield name

    @staticmethod
    def _holds(path: Path, content: bytes) -> bool:
        # A damaged copy is replaced rather than kept: sending the photo again repairs it.
        try:
            return path.read_bytes() == content
        except FileNotFoundError:
            return False

    def _make_dirs(self, directory: Path) -> None:
        # One level at a time: mkdir(parents=True) ignores `mode` for the parents it creates.
        directory.parent.mkdir(mode=_DIR_MODE, exist_ok=True)
        directory.mkdir(mode=_DIR_MODE, exist_ok=True)

    @staticmethod
    def _write_atomically(path: Path, content: bytes) -> None:
        # mkstemp creates the file with mode 0600 and a name no other writer can pick.
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as temp_file:
                temp_file.write(content)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable, not only the file's bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
