"""Receiving a photo: fetch it through the channel, check it, re-encode it, keep it.

The channel hands over what it knows (a file reference, a declared size and type); a
FileSource fetches the bytes; bot.photos decides whether they are a usable photo.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bot.blob_store import BlobStore
from bot.dialogs.model import Attachment, PhotoAccepted, PhotoOutcome, PhotoRefused
from bot.photos import PhotoLimits, PhotoProblem, PhotoRejected, check_declared, clean_photo

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"


class FileTooLarge(Exception):
    """The file is larger than the caller allows; it was not read to the end."""


class FileUnavailable(Exception):
    """The channel could not hand over the file (gone, network, refused)."""


class FileSource(Protocol):
    """How a channel hands over a file a person sent."""

    async def fetch(self, attachment: Attachment, max_bytes: int) -> bytes: ...


class PhotoIntake:
    def __init__(self, blobs: BlobStore, limits: PhotoLimits) -> None:
        self._blobs = blobs
        self._limits = limits

    @property
    def blobs(self) -> BlobStore:
        return self._blobs

    async def receive(self, files: FileSource, attachment: Attachment) -> PhotoOutcome:
        """The photo's SHA-256 once stored, or why it was refused."""
        try:
            # Refuse a PDF or a 30 MB file before downloading a byte of it.
            check_declared(attachment.size, attachment.mime_type, self._limits)
            raw = await files.fetch(attachment, self._limits.max_bytes)
            clean = await asyncio.to_thread(clean_photo, raw, self._limits)
        except PhotoRejected as rejected:
            log.info("photo refused: %s", rejected.problem.value)
            return PhotoRefused(rejected.problem.value)
        except FileTooLarge:
            return PhotoRefused(PhotoProblem.TOO_LARGE.value)
        except FileUnavailable as problem:
            log.warning("photo could not be fetched: %s", type(problem.__cause__).__name__)
            return PhotoRefused(UNAVAILABLE)
        sha256 = await asyncio.to_thread(self._blobs.put, clean.content)
        return PhotoAccepted(sha256)
