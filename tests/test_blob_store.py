"""Blob store: content in, the same content out, and nothing else under the root."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.blob_store import BlobCorrupt, BlobMissing, BlobStore

PHOTO = b"\xff\xd8\xff\xe0 pretend this is a house photo \xff\xd9"
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_stored_content_comes_back(store: BlobStore) -> None:
    sha256 = store.put(PHOTO)

    assert sha256 == PHOTO_SHA
    assert store.exists(sha256)
    assert store.get(sha256) == PHOTO


def test_blob_is_filed_under_two_levels_of_its_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)

    store.put(PHOTO)

    expected = tmp_path / PHOTO_SHA[:2] / PHOTO_SHA[2:4] / PHOTO_SHA
    assert store.path_for(PHOTO_SHA) == expected
    assert files_under(tmp_path) == [expected]


def test_empty_content_is_a_blob_too(store: BlobStore) -> None:
    assert store.get(store.put(b"")) == b""


def test_storing_the_same_content_again_keeps_the_file_and_marks_it_used(
    store: BlobStore,
) -> None:
    store.put(PHOTO)
    path = store.path_for(PHOTO_SHA)
    os.utime(path, (1_000_000, 1_000_000))  # stored long ago
    before = path.stat()
    assert not store.used_since(PHOTO_SHA, 2_000_000)
    assert list(store.older_than(2_000_000)) == [PHOTO_SHA]

    assert store.put(PHOTO) == PHOTO_SHA

    after = path.stat()
    assert after.st_ino == before.st_ino  # the same file, not rewritten
    assert store.used_since(PHOTO_SHA, 2_000_000)  # but the sweeps see it as fresh
    assert list(store.older_than(2_000_000)) == []


def test_missing_blob_is_a_key_error(store: BlobStore) -> None:
    with pytest.raises(BlobMissing):
        store.get(PHOTO_SHA)
    with pytest.raises(KeyError):
        store.get(PHOTO_SHA)
    assert not store.exists(PHOTO_SHA)


def test_damaged_blob_is_detected(store: BlobStore) -> None:
    store.put(PHOTO)
    store.path_for(PHOTO_SHA).write_bytes(PHOTO[:-1] + b"\x00")

    with pytest.raises(BlobCorrupt):
        store.get(PHOTO_SHA)


def test_storing_again_repairs_a_damaged_blob(store: BlobStore) -> None:
    store.put(PHOTO)
    store.path_for(PHOTO_SHA).write_bytes(b"half a pho")

    store.put(PHOTO)

    assert store.get(PHOTO_SHA) == PHOTO


def test_delete_removes_once(store: BlobStore) -> None:
    store.put(PHOTO)

    assert store.delete(PHOTO_SHA) is True
    assert store.delete(PHOTO_SHA) is False
    assert not store.exists(PHOTO_SHA)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        "",
        PHOTO_SHA.upper(),
        PHOTO_SHA[:-1],
        PHOTO_SHA + "0",
        PHOTO_SHA + "\n",
        PHOTO_SHA[:-2] + "/.",
        "g" * 64,
        "٣" * 64,  # digits, but not ASCII ones
    ],
)
def test_only_a_hex_digest_names_a_blob(store: BlobStore, name: str) -> None:
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        store.path_for(name)
    with pytest.raises(ValueError):
        store.get(name)
    with pytest.raises(ValueError):
        store.exists(name)
    with pytest.raises(ValueError):
        store.delete(name)


def test_store_is_private_to_the_service_user(tmp_path: Path) -> None:
    root = tmp_path / "data" / "blobs"
    store = BlobStore(root)

    store.put(PHOTO)

    path = store.path_for(PHOTO_SHA)
    assert mode_of(root) == 0o700
    assert mode_of(path.parent) == 0o700
    assert mode_of(path.parent.parent) == 0o700
    assert mode_of(path) == 0o600


def test_existing_root_is_used_as_it_is(tmp_path: Path) -> None:
    BlobStore(tmp_path).put(PHOTO)

    assert BlobStore(tmp_path).get(PHOTO_SHA) == PHOTO


def test_simultaneous_puts_of_the_same_content_all_succeed(store: BlobStore) -> None:
    content = os.urandom(256 * 1024)
    start = threading.Barrier(16)

    def put() -> str:
        start.wait()
        return store.put(content)

    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(lambda _: put(), range(16)))

    sha256 = hashlib.sha256(content).hexdigest()
    assert names == [sha256] * 16
    assert store.get(sha256) == content
    assert files_under(store.path_for(sha256).parent.parent.parent) == [store.path_for(sha256)]


def test_failed_write_leaves_no_temporary_file(
    store: BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)

    with pytest.raises(OSError, match="No space left"):
        store.put(PHOTO)

    assert not store.exists(PHOTO_SHA)
    assert files_under(tmp_path) == []
