"""Small factories for filings: photos made with Pillow, drafts, a filer, and a helper
that files through the domain service as the dialog's confirming step does."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image

from bot.app import Services
from bot.filings import Filer, FilingDraft, FilingOutcome, FilingPhoto


def jpeg_photo(seed: int, size: tuple[int, int] = (640, 480)) -> bytes:
    """A small noisy JPEG, different for each seed (so each has its own hash)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(40):
        x, y = rng.randrange(size[0] - 20), rng.randrange(size[1] - 20)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        image.paste(colour, (x, y, x + 20, y + 20))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def filer(number: int, channel: str = "telegram") -> tuple[Filer, str]:
    address = str(70_000 + number)
    return Filer(channel=channel, address=address, address_hash=f"{number:064x}"), address


def proposal(nik: str, photos: tuple[FilingPhoto, ...]) -> FilingDraft:
    return FilingDraft(
        kind="proposal",
        language="id",
        subject_nik=nik,
        subject_name="Sutarmi",
        subject_kk=nik,
        fields={"address": "Jl. Mawar 3, RT 02 RW 05", "programme": "PKH"},
        photos=photos,
    )


def objection(nik: str) -> FilingDraft:
    return FilingDraft(
        kind="objection",
        language="en",
        subject_nik=nik,
        subject_name="Sutarmi",
        reason_code="aid_stopped",
        text="Bantuan berhenti padahal kami masih miskin.",
        fields={"sort": "own_status"},
    )


async def file(services: Services, who: Filer, draft: FilingDraft) -> FilingOutcome:
    """File as the confirming dialog step does: in one transaction with its outbox row."""
    async with services.database.transaction() as session:
        return await services.filings.submit(session, who, draft)


def stored_photos(services: Services, count: int, seed: int = 0) -> tuple[FilingPhoto, ...]:
    """`count` photos put in the blob store, with the roles a proposal needs first."""
    roles = ["house_front", "house_inside", "ktp_selfie"]
    return tuple(
        FilingPhoto(services.blobs.put(jpeg_photo(seed * 10 + n)), roles[n % len(roles)])
        for n in range(count)
    )
