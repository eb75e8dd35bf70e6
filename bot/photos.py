"""Photo intake: refuse what is not a house photo we can handle, re-encode what is.

Every accepted photo is decoded and saved again as a plain JPEG, so nothing the sender's
phone put in the file (GPS position, camera serial, thumbnails, comments) is ever stored,
and a crafted file never reaches a viewer. CPU-bound and free of shared state: callers run
`clean_photo` in a thread.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, ImageOps

_PHOTO_FORMATS = ["JPEG", "PNG", "WEBP"]
_PHOTO_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/jpg"})
# What clients declare when they do not know; the bytes decide for those.
_UNDECLARED_MIME_TYPES = frozenset({"", "application/octet-stream"})
_JPEG_QUALITY = 85
_WHITE = (255, 255, 255)

_PHOTO_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
# Images of a kind we refuse, told apart from other files only to give a better answer.
_OTHER_IMAGE_SIGNATURES = (
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"BM",
    b"8BPS",  # Photoshop
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",  # JPEG XL container
    b"\xff\x0a",  # JPEG XL codestream
)
# ISO media files say what they hold in the "ftyp" box; these brands are still images.
_IMAGE_FTYP_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
)
# What a broken or hostile file makes Pillow raise while it parses or decodes.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error)


class PhotoProblem(StrEnum):
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNREADABLE = "unreadable"


class PhotoRejected(ValueError):
    """Why a file is not taken. Carries no part of the file, so it is safe to log."""

    def __init__(self, problem: PhotoProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    max_bytes: int = 10 * 1024 * 1024
    # Checked from the header before decoding: a few KB of PNG can claim gigabytes of pixels.
    max_pixels: int = 40_000_000
    # The longer side of the stored photo; enough to read a house number or a wall's material.
    max_side: int = 2560


@dataclass(frozen=True, slots=True)
class CleanPhoto:
    """A re-encoded JPEG without metadata; `sha256` is the hex digest of `content`."""

    content: bytes
    sha256: str
    width: int
    height: int

    def __repr__(self) -> str:  # keep photo bytes out of logs and tracebacks
        return (
            f"CleanPhoto(sha256={self.sha256!r}, width={self.width}, height={self.height}, "
            f"bytes={len(self.content)})"
        )


def check_declared(size: int | None, mime_type: str | None, limits: PhotoLimits) -> None:
    """Refuse from what Telegram declares, before downloading; unknown values pass.

    Only a cheap first filter: the sender controls these values, `clean_photo` decides.
    """
    if size is not None and size > limits.max_bytes:
        raise PhotoRejected(PhotoProblem.TOO_LARGE)
    if mime_type is None:
        return
    essence = mime_type.split(";", 1)[0].strip().lower()
    if essence in _UNDECLARED_MIME_TYPES or essence in _PHOTO_MIME_TYPES:
        return
    if essence.startswith("image/"):
        raise PhotoRejected(PhotoProblem.UNSUPPORTED_FORMAT)
    raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE)


def clean_photo(raw: bytes, limits: PhotoLimits) -> CleanPhoto:
    """Check `raw` and re-encode it upright, in RGB, at most `max_side` long, as JPEG."""
    if len(raw) > limits.max_bytes:
        raise PhotoRejected(PhotoProblem.TOO_LARGE)
    if not _looks_like_photo(raw):
        if _looks_like_other_image(raw):
            raise PhotoRejected(PhotoProblem.UNSUPPORTED_FORMAT)
        raise PhotoRejected(PhotoProblem.NOT_AN_IMAGE)
    try:
        opened = Image.open(io.BytesIO(raw), formats=_PHOTO_FORMATS)
    except Image.DecompressionBombError:
        raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS) from None
    except _DECODE_ERRORS:
        raise PhotoRejected(PhotoProblem.UNREADABLE) from None
    with opened as image:
        # Image.open has only read the header. Pillow's own bomb check stays on as a second
        # fence, but it hangs on a global that any code may change, so ours decides.
        width, height = image.size
        if width * height > limits.max_pixels:
            raise PhotoRejected(PhotoProblem.TOO_MANY_PIXELS)
        try:
            _decode_small(image, limits.max_side)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            picture = _flatten_to_rgb(image)
        except _DECODE_ERRORS:
            raise PhotoRejected(PhotoProblem.UNREADABLE) from None
    picture.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
    # Dropping `info` keeps a JPEG comment from being copied over; EXIF and ICC are only
    # written when passed to save(), which they are not.
    picture.info = {}
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=_JPEG_QUALITY, optimize=False)
    content = buffer.getvalue()
    return CleanPhoto(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        width=picture.width,
        height=picture.height,
    )


def _looks_like_photo(raw: bytes) -> bool:
    return raw.startswith(_PHOTO_SIGNATURES) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _looks_like_other_image(raw: bytes) -> bool:
    return raw.startswith(_OTHER_IMAGE_SIGNATURES) or (
        raw[4:8] == b"ftyp" and raw[8:12] in _IMAGE_FTYP_BRANDS
    )


def _decode_small(image: Image.Image, max_side: int) -> None:
    """Let a big JPEG decode at 1/2, 1/4 or 1/8 scale when it will be shrunk anyway.

    A 40-megapixel photo then takes a quarter of the memory and time. The scale is chosen
    so that the decoded picture is still at least as long as the one we keep.
    """
    width, height = image.size
    longer = max(width, height)
    if image.format not in ("JPEG", "MPO") or longer <= max_side:
        return
    image.draft(None, (max(1, width * max_side // longer), max(1, height * max_side // longer)))


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB for JPEG; a transparent background becomes white, as it looks in a chat."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
