"""Photo intake: what is refused and why, and what an accepted photo turns into.

Every image is built here with Pillow; no binary fixture is committed.
"""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import ExifTags, Image, ImageFile

from bot.photos import (
    CleanPhoto,
    PhotoLimits,
    PhotoProblem,
    PhotoRejected,
    check_declared,
    clean_photo,
)

LIMITS = PhotoLimits()
RED = (220, 30, 30)
BLUE = (30, 30, 220)
WHITE = (255, 255, 255)


# --- factories ---------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def house_photo(size: tuple[int, int] = (1600, 1200)) -> Image.Image:
    """Noise over gradients: compresses like a real photo, unlike a flat colour."""
    ramp = Image.linear_gradient("L").resize(size)
    return Image.merge(
        "RGB",
        (
            Image.effect_noise(size, 40),
            ramp,
            Image.blend(
                Image.effect_noise(size, 20),
                ramp.transpose(Image.Transpose.ROTATE_90).resize(size),
                0.5,
            ),
        ),
    )


def halves(
    size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str
) -> Image.Image:
    image = Image.new(mode, size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def phone_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestPhone"
    exif[ExifTags.Base.Model] = "Model X"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "S",
        ExifTags.GPS.GPSLatitude: (7.0, 25.0, 30.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (109.0, 14.0, 5.0),
    }
    return exif


def png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def png_bomb(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of `width`×`height` black pixels; a few dozen KB."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed bits
    compressed = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", compressed)
        + png_chunk(b"IEND", b"")
    )


def jpeg_markers(jpeg: bytes) -> list[int]:
    """The marker of every segment before the image data starts."""
    assert jpeg[:2] == b"\xff\xd8"
    markers, position = [], 2
    while True:
        assert jpeg[position] == 0xFF
        marker = jpeg[position + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return markers
        (length,) = struct.unpack(">H", jpeg[position + 2 : position + 4])
        position += 2 + length


def opened(photo: CleanPhoto) -> Image.Image:
    image = Image.open(io.BytesIO(photo.content))
    image.load()
    return image


def close_to(actual: Any, expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def rejected(raw: bytes, limits: PhotoLimits = LIMITS) -> PhotoProblem:
    with pytest.raises(PhotoRejected) as caught:
        clean_photo(raw, limits)
    return caught.value.problem


@pytest.fixture(scope="module")
def phone_jpeg() -> bytes:
    return encode(house_photo(), "JPEG", quality=92, exif=phone_exif(1))


# --- what is accepted ----------------------------------------------------------------------


def test_sideways_phone_photo_comes_out_upright_without_any_metadata() -> None:
    stored_sideways = halves((120, 80), RED, BLUE, "RGB")
    raw = encode(
        stored_sideways,
        "JPEG",
        exif=phone_exif(orientation=6),
        icc_profile=b"not-really-a-profile",
        comment=b"Budi's phone",
    )
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    photo = clean_photo(raw, LIMITS)

    image = opened(photo)
    assert (photo.width, photo.height) == image.size == (80, 120)
    # Orientation 6 means "turn 90° clockwise to view": the stored left half is now on top.
    assert close_to(image.getpixel((40, 10)), RED)
    assert close_to(image.getpixel((40, 110)), BLUE)
    assert len(image.getexif()) == 0
    assert not {"exif", "icc_profile", "comment", "xmp"} & image.info.keys()
    markers = jpeg_markers(photo.content)
    assert 0xE1 not in markers  # APP1: EXIF and XMP
    assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE]  # other APPn, COM
    assert b"TestPhone" not in photo.content


def test_transparent_png_becomes_jpeg_on_white() -> None:
    raw = encode(halves((100, 60), (0, 0, 0, 0), (*RED, 255), "RGBA"), "PNG")

    photo = clean_photo(raw, LIMITS)

    image = opened(photo)
    assert image.format == "JPEG"
    assert image.mode == "RGB"
    assert close_to(image.getpixel((10, 30)), WHITE)
    assert close_to(image.getpixel((90, 30)), RED)


def test_palette_png_with_transparent_colour_becomes_white() -> None:
    palette_image = halves((100, 60), (0, 0, 0, 0), (*BLUE, 255), "RGBA").quantize(2)
    raw = encode(palette_image, "PNG", transparency=palette_image.getpixel((10, 30)))

    image = opened(clean_photo(raw, LIMITS))

    assert close_to(image.getpixel((10, 30)), WHITE)
    assert close_to(image.getpixel((90, 30)), BLUE)


def test_webp_becomes_jpeg() -> None:
    raw = encode(halves((100, 60), RED, BLUE, "RGB"), "WEBP", quality=90)

    photo = clean_photo(raw, LIMITS)

    image = opened(photo)
    assert image.format == "JPEG"
    assert image.size == (100, 60)
    assert close_to(image.getpixel((10, 30)), RED)


def test_grayscale_jpeg_is_stored_as_rgb() -> None:
    raw = encode(Image.new("L", (50, 50), 128), "JPEG")

    assert opened(clean_photo(raw, LIMITS)).mode == "RGB"


def test_large_photo_is_shrunk_to_the_longest_side_allowed() -> None:
    raw = encode(halves((4000, 3000), RED, BLUE, "RGB"), "JPEG", quality=90)

    photo = clean_photo(raw, LIMITS)

    assert (photo.width, photo.height) == opened(photo).size == (2560, 1920)


@pytest.mark.parametrize(
    ("size", "expected"), [((2400, 1800), (500, 375)), ((960, 2400), (200, 500))]
)
def test_big_jpeg_decoded_at_reduced_scale_still_fills_the_longest_side(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    raw = encode(house_photo(size), "JPEG")

    photo = clean_photo(raw, PhotoLimits(max_side=500))

    assert (photo.width, photo.height) == opened(photo).size == expected


def test_small_photo_is_not_enlarged() -> None:
    photo = clean_photo(encode(house_photo((320, 240)), "PNG"), LIMITS)

    assert (photo.width, photo.height) == (320, 240)


def test_same_photo_gives_the_same_bytes_every_time(phone_jpeg: bytes) -> None:
    first = clean_photo(phone_jpeg, LIMITS)
    second = clean_photo(phone_jpeg, LIMITS)

    assert first.content == second.content
    assert first.sha256 == second.sha256


def test_same_photo_gives_the_same_bytes_from_many_threads(phone_jpeg: bytes) -> None:
    shrinking = PhotoLimits(max_side=1000)
    expected = clean_photo(phone_jpeg, shrinking)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: clean_photo(phone_jpeg, shrinking), range(8)))

    assert {r.content for r in results} == {expected.content}


def test_digest_names_the_output_bytes(phone_jpeg: bytes) -> None:
    photo = clean_photo(phone_jpeg, LIMITS)

    assert photo.sha256 == hashlib.sha256(photo.content).hexdigest()


def test_repr_does_not_carry_the_photo(phone_jpeg: bytes) -> None:
    photo = clean_photo(phone_jpeg, LIMITS)

    assert len(repr(photo)) < 200
    assert photo.sha256 in repr(photo)


# --- what is refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(100),
        b"Ini foto rumah saya",
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41",  # an MP4 video
        b"",
    ],
    ids=["pdf", "zip", "text", "mp4", "empty"],
)
def test_other_files_are_not_images(raw: bytes) -> None:
    assert rejected(raw) is PhotoProblem.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP"])
def test_images_in_other_formats_are_unsupported(fmt: str) -> None:
    raw = encode(halves((40, 30), RED, BLUE, "RGB"), fmt)

    assert rejected(raw) is PhotoProblem.UNSUPPORTED_FORMAT


def test_iphone_heic_is_unsupported() -> None:
    header = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"

    assert rejected(header + bytes(200)) is PhotoProblem.UNSUPPORTED_FORMAT


def test_oversized_file_is_refused_before_any_decoding(
    phone_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the image was opened")

    monkeypatch.setattr(Image, "open", must_not_open)
    padded = phone_jpeg + bytes(30 * 1024 * 1024)

    assert rejected(padded) is PhotoProblem.TOO_LARGE


def test_size_cap_is_inclusive(phone_jpeg: bytes) -> None:
    assert clean_photo(phone_jpeg, PhotoLimits(max_bytes=len(phone_jpeg)))
    assert (
        rejected(phone_jpeg, PhotoLimits(max_bytes=len(phone_jpeg) - 1)) is PhotoProblem.TOO_LARGE
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_file_is_unreadable(fmt: str) -> None:
    whole = encode(house_photo((400, 300)), fmt)

    assert rejected(whole[: len(whole) // 2]) is PhotoProblem.UNREADABLE


def test_truncated_big_jpeg_is_unreadable_when_decoded_at_reduced_scale() -> None:
    whole = encode(house_photo((2400, 1800)), "JPEG")

    assert rejected(whole[: len(whole) // 2], PhotoLimits(max_side=500)) is PhotoProblem.UNREADABLE


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xd8\xff" + bytes(64),
        b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
        b"RIFF\x00\x00\x00\x00WEBPjunk",
    ],
    ids=["jpeg", "png", "webp"],
)
def test_file_with_a_photo_signature_but_no_photo_is_unreadable(raw: bytes) -> None:
    assert rejected(raw) is PhotoProblem.UNREADABLE


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(20_000, 20_000)


def spy_on_decoding(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real_load: Callable[..., Any] = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        calls.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


def test_decompression_bomb_is_refused_from_its_header(
    bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(bomb) < 100_000  # 400 million pixels in a small download
    decoded = spy_on_decoding(monkeypatch)

    started = time.perf_counter()
    problem = rejected(bomb)

    assert problem is PhotoProblem.TOO_MANY_PIXELS
    assert time.perf_counter() - started < 1.0
    assert decoded == []


def test_bomb_is_refused_even_with_pillows_own_limit_switched_off(
    bomb: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    decoded = spy_on_decoding(monkeypatch)

    started = time.perf_counter()
    problem = rejected(bomb)

    assert problem is PhotoProblem.TOO_MANY_PIXELS
    assert time.perf_counter() - started < 1.0
    assert decoded == []


def test_pixel_cap_applies_below_pillows_own_limit() -> None:
    raw = encode(Image.new("RGB", (300, 200)), "PNG")

    assert rejected(raw, PhotoLimits(max_pixels=300 * 200 - 1)) is PhotoProblem.TOO_MANY_PIXELS
    assert clean_photo(raw, PhotoLimits(max_pixels=300 * 200))


def test_pillow_globals_are_left_alone(phone_jpeg: bytes, bomb: bytes) -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)

    clean_photo(phone_jpeg, LIMITS)
    rejected(bomb)

    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


def test_rejection_says_why_and_nothing_of_the_file() -> None:
    error = PhotoRejected(PhotoProblem.UNREADABLE)

    assert isinstance(error, ValueError)
    assert str(error) == "unreadable"


# --- what Telegram declares ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "mime_type"),
    [
        (None, None),
        (1234, "image/jpeg"),
        (LIMITS.max_bytes, "image/png"),
        (None, "image/webp"),
        (None, "IMAGE/JPEG; charset=binary"),
        (None, "application/octet-stream"),
        (None, ""),
    ],
)
def test_declared_photo_passes(size: int | None, mime_type: str | None) -> None:
    check_declared(size, mime_type, LIMITS)


@pytest.mark.parametrize(
    ("size", "mime_type", "problem"),
    [
        (LIMITS.max_bytes + 1, "image/jpeg", PhotoProblem.TOO_LARGE),
        (50 * 1024 * 1024, None, PhotoProblem.TOO_LARGE),
        (None, "application/pdf", PhotoProblem.NOT_AN_IMAGE),
        (None, "application/zip", PhotoProblem.NOT_AN_IMAGE),
        (None, "video/mp4", PhotoProblem.NOT_AN_IMAGE),
        (None, "image/gif", PhotoProblem.UNSUPPORTED_FORMAT),
        (None, "image/heic", PhotoProblem.UNSUPPORTED_FORMAT),
        (None, "image/tiff", PhotoProblem.UNSUPPORTED_FORMAT),
    ],
)
def test_declared_non_photo_is_refused_before_download(
    size: int | None, mime_type: str | None, problem: PhotoProblem
) -> None:
    with pytest.raises(PhotoRejected) as caught:
        check_declared(size, mime_type, LIMITS)

    assert caught.value.problem is problem
