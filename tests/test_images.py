"""Image inputs: every form a caller may hold, checked and turned into what the API accepts."""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import random
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from PIL import Image, features

from reve_remix import _images
from reve_remix._exceptions import ValidationError
from reve_remix._images import (
    LocalImage,
    check_uploaded_url,
    data_url,
    prepare_image,
    sniff_format,
)
from reve_remix._spec import SpecError, size_limit, spec

LIMIT = 1_500_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def small(fmt: str, mode: str = "RGB") -> bytes:
    return encode(Image.new(mode, (8, 6), "red" if mode != "1" else 1), fmt)


def noise_image(side: int = 720) -> Image.Image:
    """Random pixels do not compress: 720x720 RGB makes a PNG just over 1.5 MB."""
    return Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3))


@pytest.fixture(scope="module")
def oversize_png() -> bytes:
    data = encode(noise_image(), "PNG")
    assert LIMIT < len(data) < LIMIT * 1.1
    return data


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO BMFF ftyp box followed by the start of a meta box, as HEIF files begin."""
    size = 16 + 4 * len(compatible)
    box = size.to_bytes(4, "big") + b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
    return box + b"\0\0\0\x21meta\0\0\0\0"


# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("PNG", "png"),
        ("JPEG", "jpeg"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
    ],
)
def test_sniff_recognises_files_pillow_writes(fmt: str, expected: str) -> None:
    assert sniff_format(small(fmt)) == expected


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")
def test_sniff_recognises_a_real_avif() -> None:
    assert sniff_format(small("AVIF")) == "avif"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "heif"),  # an iPhone photo
        (ftyp(b"mif1", b"heic"), "heif"),
        (ftyp(b"heix"), "heif"),
        (ftyp(b"msf1", b"hevc"), "heif"),  # an image sequence
        (ftyp(b"mif1", b"miaf"), "heif"),  # generic HEIF, no codec brand
        (ftyp(b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"mif1", b"avif", b"miaf"), "avif"),  # AVIF named only among compatible brands
        (ftyp(b"avis", b"msf1"), "avif"),
        (ftyp(b"heic", b"avif"), "heif"),  # the major brand wins
        (ftyp(b"isom", b"iso2", b"mp41"), None),  # an MP4 video
        (ftyp(b"mp42"), None),
        (ftyp(b"heic", b"mif1")[:18], None),  # the ftyp box is cut short
        (b"\0\0\0\x0fftypheic\0\0\0\0", None),  # box size not 16 + 4n
        (b"\0\0\0\x08ftyp", None),
    ],
)
def test_sniff_reads_iso_bmff_brands(header: bytes, expected: str | None) -> None:
    assert sniff_format(header) == expected


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PN", b"RIFF\0\0\0\0WAVE", b"BMW makes cars, not bitmaps", b"%PDF-1.7", b"<svg/>"],
)
def test_sniff_does_not_guess(data: bytes) -> None:
    assert sniff_format(data) is None


# --- accepted inputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "expected"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_each_supported_format_is_accepted_from_a_path(
    tmp_path: Path, fmt: str, expected: str
) -> None:
    path = tmp_path / f"cat.{expected}"
    path.write_bytes(small(fmt))
    image = prepare_image(path, "image 0")
    assert image == LocalImage("image 0", path.read_bytes(), f"image/{expected}", expected)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")
def test_avif_is_accepted() -> None:
    image = prepare_image(small("AVIF"), "image 0")
    assert isinstance(image, LocalImage)
    assert (image.format, image.mime) == ("avif", "image/avif")


def test_heif_is_accepted_from_its_header() -> None:
    image = prepare_image(ftyp(b"heic", b"mif1", b"heic"), "image 0")
    assert isinstance(image, LocalImage)
    assert (image.format, image.mime) == ("heif", "image/heif")


def test_every_local_input_type_gives_the_same_image(tmp_path: Path) -> None:
    data = small("PNG")
    path = tmp_path / "cat.png"
    path.write_bytes(data)
    with path.open("rb") as opened:
        inputs: list[object] = [
            str(path),
            path,
            data,
            bytearray(data),
            memoryview(data),
            io.BytesIO(data),
            opened,
        ]
        results = [prepare_image(item, "image 0") for item in inputs]
    assert results == [LocalImage("image 0", data, "image/png", "png")] * len(inputs)


def test_bytes_are_not_copied() -> None:
    data = small("JPEG")
    image = prepare_image(data, "image 0")
    assert isinstance(image, LocalImage)
    assert image.data is data


def test_a_mutable_buffer_is_snapshotted() -> None:
    buffer = bytearray(small("PNG"))
    image = prepare_image(buffer, "image 0")
    buffer[:4] = b"GIF8"
    assert isinstance(image, LocalImage)
    assert image.format == "png"
    assert image.data.startswith(PNG_SIGNATURE)


def test_a_file_object_is_read_from_its_position() -> None:
    stream = io.BytesIO(b"junk" + small("PNG"))
    stream.seek(4)
    image = prepare_image(stream, "image 0")
    assert isinstance(image, LocalImage)
    assert image.format == "png"


def test_a_pil_image_is_encoded_as_lossless_png() -> None:
    original = Image.new("RGB", (5, 4), (10, 200, 30))
    image = prepare_image(original, "image 0")
    assert isinstance(image, LocalImage)
    assert (image.format, image.mime) == ("png", "image/png")
    assert Image.open(io.BytesIO(image.data)).getpixel((4, 3)) == (10, 200, 30)


def test_a_pil_image_opened_from_a_jpeg_is_sent_as_png() -> None:
    opened = Image.open(io.BytesIO(small("JPEG")))
    image = prepare_image(opened, "image 0")
    assert isinstance(image, LocalImage)
    assert image.format == "png"


@pytest.mark.parametrize("mode", ["CMYK", "F", "I", "1", "P", "LA"])
def test_pil_images_of_any_mode_become_png(mode: str) -> None:
    image = prepare_image(Image.new(mode, (3, 3)), "image 0")
    assert isinstance(image, LocalImage)
    assert Image.open(io.BytesIO(image.data)).size == (3, 3)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://127.0.0.1:8080/a/b.webp?sig=x%20y",
        "HTTPS://EXAMPLE.COM/CAT.PNG",
        "https://[::1]/cat.png",
    ],
)
def test_http_urls_are_returned_unchanged(url: str) -> None:
    assert prepare_image(url, "image 0") is url


def test_a_lying_extension_does_not_fool_the_sniff(tmp_path: Path) -> None:
    path = tmp_path / "cat.jpg"
    path.write_bytes(small("PNG"))
    image = prepare_image(path, "image 0")
    assert isinstance(image, LocalImage)
    assert (image.format, image.mime) == ("png", "image/png")


def test_a_truncated_file_with_a_valid_header_is_accepted_by_design(tmp_path: Path) -> None:
    # Documented: only the signature is checked; decoding needs Pillow, the API reports it.
    path = tmp_path / "cut.png"
    path.write_bytes(small("PNG")[:40])
    image = prepare_image(path, "image 0")
    assert isinstance(image, LocalImage)
    assert image.format == "png"


# --- rejected inputs -----------------------------------------------------------------------------


def test_a_text_file_named_png_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_text("<!DOCTYPE html><p>404 Not Found</p>")
    with pytest.raises(ValidationError) as caught:
        prepare_image(path, "image 'cat'")
    message = str(caught.value)
    assert message.startswith("image 'cat' (file '")
    assert "cat.png" in message
    assert "unknown format (35 bytes, starting b'<!DOCTYPE html><')" in message
    assert "PNG, JPEG, WebP, AVIF or HEIF" in message


def test_a_file_cut_inside_its_signature_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    path.write_bytes(small("PNG")[:5])
    with pytest.raises(ValidationError, match=r"unknown format \(5 bytes"):
        prepare_image(path, "image 0")


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_unsupported_formats_are_named(fmt: str, name: str) -> None:
    data = small(fmt)
    with pytest.raises(ValidationError) as caught:
        prepare_image(data, "image 2")
    assert str(caught.value) == (
        f"image 2: {name} ({len(data)} bytes) is not supported; the API takes PNG, JPEG, WebP, "
        "AVIF or HEIF; pass fit=True to convert it"
    )


@pytest.mark.parametrize("empty", [b"", bytearray(), io.BytesIO()])
def test_empty_content_is_rejected(empty: object) -> None:
    with pytest.raises(ValidationError, match=r"^image 0.*: empty \(0 bytes\), not an image$"):
        prepare_image(empty, "image 0")


@pytest.mark.parametrize(
    ("item", "given"),
    [
        (42, "got int 42"),
        (None, "got None"),
        (True, "got bool True"),
        ([b"x"], "got list [b'x']"),
        (object, "got type <class 'object'>"),
    ],
)
def test_other_types_are_rejected_naming_what_was_given(item: object, given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_image(item, "image 1")
    message = str(caught.value)
    assert message.startswith("image 1: expected an http(s) URL, a data: URL, a file path")
    assert message.endswith(given)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://example.com/cat.png", "ftp"),
        ("file:///tmp/cat.png", "file"),
        ("javascript:alert(1)", "javascript"),
        ("s3://bucket/cat.png", "s3"),
    ],
)
def test_other_url_schemes_are_rejected(url: str, scheme: str) -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_image(url, "image 0")
    message = str(caught.value)
    assert message.startswith(f"image 0: {url!r} has the URL scheme '{scheme}:'")
    assert "only http(s) and data: URLs are accepted" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://example.com/a cat.png", "contains whitespace"),
        (" https://example.com/cat.png", "contains whitespace"),
        ("https://example.com/cat.png\n", "contains whitespace"),
        ("https:///cat.png", "has no host"),
        ("http://example.com:port/", "is not a valid URL"),
        ("http://[::1/", "is not a valid URL"),
    ],
)
def test_malformed_http_urls_are_rejected(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=f"^image 0: URL .* {problem}"):
        prepare_image(url, "image 0")


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    with pytest.raises(
        ValidationError, match=r"is neither an http\(s\) URL, a data: URL nor an exis"
    ):
        prepare_image(str(missing), "image 0")
    with pytest.raises(ValidationError, match=r"^image 0: no such file: '.*/missing\.png'$"):
        prepare_image(missing, "image 0")


def test_a_directory_is_rejected(tmp_path: Path) -> None:
    for item in (tmp_path, str(tmp_path)):
        with pytest.raises(ValidationError, match="a directory, not an image file"):
            prepare_image(item, "image 0")


@pytest.mark.parametrize("text", ["x" * 5000, "a\0b.png", "~/" + "long/" * 200 + "cat.png"])
def test_impossible_paths_are_not_files_and_messages_stay_short(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_image(text, "image 0")
    assert "neither an http(s) URL" in str(caught.value)
    assert len(str(caught.value)) < 250


def test_raw_base64_gets_a_hint_and_is_not_echoed() -> None:
    raw = base64.b64encode(small("PNG")).decode()
    with pytest.raises(ValidationError) as caught:
        prepare_image(raw, "image 0")
    message = str(caught.value)
    assert "make it a data: URL" in message
    assert raw[:20] not in message


def test_a_text_mode_file_is_rejected_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(small("PNG"))
    with path.open() as text_file, pytest.raises(ValidationError) as caught:
        prepare_image(text_file, "image 0")
    assert "opened in text mode; open it with 'rb'" in str(caught.value)
    assert "cat.png" in str(caught.value)


def test_a_reader_returning_text_is_rejected() -> None:
    class Reader:
        def read(self) -> str:
            return "not bytes"

    with pytest.raises(ValidationError, match=r"read\(\) returned text; open the file in bin"):
        prepare_image(Reader(), "image 0")


def test_a_closed_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(small("PNG"))
    with path.open("rb") as opened:
        pass
    with pytest.raises(ValidationError, match="cannot read it: read of closed file"):
        prepare_image(opened, "image 0")


# --- the size limit ------------------------------------------------------------------------------


def test_the_limit_comes_from_the_spec() -> None:
    assert spec().max_image_bytes == LIMIT


def limit_of(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Make ``_images`` see a spec whose size limit is ``limit`` bytes."""
    changed = dataclasses.replace(spec(), max_image_bytes=limit)
    monkeypatch.setattr(_images, "spec", lambda: changed)


@pytest.mark.parametrize(
    ("description", "limit"),
    [
        ("Each image must be less than 2 MB.", 2_000_000),
        ("Each image must be LESS THAN 512KiB, and PNG.", 524_288),
        ("Images must be less than 0.25 MB", 250_000),
    ],
)
def test_a_changed_spec_moves_the_limit(
    monkeypatch: pytest.MonkeyPatch, description: str, limit: int
) -> None:
    assert size_limit(description) == limit
    limit_of(monkeypatch, limit)
    with pytest.raises(ValidationError, match="too large"):
        prepare_image(PNG_SIGNATURE.ljust(limit, b"\0"), "image 0")


def test_an_unparseable_spec_fails_loudly() -> None:
    with pytest.raises(SpecError, match=r"in 'Images should be small\.'$"):
        size_limit("Images should be small.")


def test_the_limit_is_exclusive() -> None:
    fits = PNG_SIGNATURE.ljust(LIMIT - 1, b"\0")
    image = prepare_image(fits, "image 0")
    assert isinstance(image, LocalImage)
    assert image.data is fits
    with pytest.raises(ValidationError) as caught:
        prepare_image(PNG_SIGNATURE.ljust(LIMIT, b"\0"), "image 0")
    assert str(caught.value) == (
        "image 0: PNG of 1.5 MB (1,500,000 bytes) is too large; each image must be less than "
        "1.5 MB (1,500,000 bytes); pass fit=True to shrink it"
    )


def test_an_oversize_file_names_its_format_and_size(tmp_path: Path, oversize_png: bytes) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(oversize_png)
    with pytest.raises(ValidationError) as caught:
        prepare_image(path, "image 'big'")
    message = str(caught.value)
    assert message.startswith("image 'big' (file '")
    assert f"PNG of 1.6 MB ({len(oversize_png):,} bytes) is too large" in message


def test_an_oversize_pil_image_is_rejected_without_fit() -> None:
    with pytest.raises(ValidationError, match=r"^image 0 \(PIL image, as PNG\): PNG of 1.6 MB"):
        prepare_image(noise_image(), "image 0")


# --- data: URLs ----------------------------------------------------------------------------------


def test_a_data_url_round_trips_unchanged() -> None:
    url = data_url(small("WEBP"), "image/webp")
    assert url.startswith("data:image/webp;base64,UklGR")
    assert prepare_image(url, "image 0") is url


def test_data_url_is_plain_base64() -> None:
    assert data_url(b"\x89PNG", "image/png") == "data:image/png;base64,iVBORw=="


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64," + base64.b64encode(small("PNG")).decode(),
        "DATA:image/PNG;BASE64," + base64.b64encode(small("PNG")).decode(),
        "data:image/png," + quote_from_bytes(small("PNG")),
        "data:image/jpg;base64," + base64.b64encode(small("JPEG")).decode(),
        "data:image/heic;base64," + base64.b64encode(ftyp(b"heic", b"mif1")).decode(),
    ],
)
def test_data_urls_in_either_encoding_are_accepted(url: str) -> None:
    assert prepare_image(url, "image 0") is url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("data:image/png;base64", "has no ',' before its data"),
        ("data:image/png;base64,iVBORw0KGgo!!", "has invalid base64 data"),
        ("data:image/png;base64,iVBORw0KGgo=\n", "has invalid base64 data"),
        ("data:image/png;base64,", "empty (0 bytes), not an image"),
        ("data:image/gif;base64,R0lGODlhAQABAAAAACw=", "GIF (14 bytes) is not supported"),
        ("data:,hello", "unknown format (5 bytes, starting b'hello')"),
    ],
)
def test_bad_data_urls_are_rejected(url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_image(url, "image 3")
    assert str(caught.value).startswith("image 3")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("header", "declared"),
    [("data:image/jpeg;base64,", "'image/jpeg'"), ("data:;base64,", "no media type")],
)
def test_a_data_url_must_declare_what_it_holds(header: str, declared: str) -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_image(header + base64.b64encode(small("PNG")).decode(), "image 0")
    assert str(caught.value) == (
        f"image 0: data: URL declares {declared} but holds PNG data; "
        "start it with 'data:image/png;base64,'"
    )


def test_an_oversize_data_url_is_rejected_without_echoing_it(oversize_png: bytes) -> None:
    url = data_url(oversize_png, "image/png")
    with pytest.raises(ValidationError) as caught:
        prepare_image(url, "image 0")
    message = str(caught.value)
    assert message.startswith("image 0 (data: URL): PNG of 1.6 MB")
    assert len(message) < 200


# --- uploader results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://cdn.example.com/a.png?sig=1", "data:image/png;base64,iVBORw=="]
)
def test_uploaded_urls_are_accepted(url: str) -> None:
    assert check_uploaded_url(url, "image 0") is url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (None, "the uploader returned None, not an http(s) or data: URL"),
        (b"https://x.com/a.png", "the uploader returned bytes b'https://x.com/a.png', not"),
        ("s3://bucket/key", "the uploader returned 's3://bucket/key', not an http(s) or data:"),
        ("data:image/png;base64,", "the uploader returned a data: URL without data: 'data:"),
        ("data:image/png", "the uploader returned a data: URL without data: 'data:im"),
        ("https://x.com/a b.png", "the uploader's URL 'https://x.com/a b.png' contains whitesp"),
        ("https://", "the uploader's URL 'https://' has no host"),
    ],
)
def test_bad_uploaded_urls_are_rejected(url: object, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_uploaded_url(url, "image 'cat'")
    assert str(caught.value).startswith(f"image 'cat': {problem}")


# --- fit=True ------------------------------------------------------------------------------------


def test_fit_reencodes_an_oversize_image_under_the_limit(
    oversize_png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reve_remix"):
        image = prepare_image(oversize_png, "image 'cat'", fit=True)
    assert isinstance(image, LocalImage)
    assert (image.format, image.mime, image.label) == ("webp", "image/webp", "image 'cat'")
    assert len(image.data) < LIMIT
    assert sniff_format(image.data) == "webp"
    assert caplog.messages == [
        f"image 'cat': 1.6 MB PNG 720x720 → {len(image.data) / 1000:.1f} kB WebP 720x720"
    ]


def test_fit_downscales_when_reencoding_is_not_enough(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    limit_of(monkeypatch, 40_000)
    with caplog.at_level(logging.INFO, logger="reve_remix"):
        image = prepare_image(encode(noise_image(300), "PNG"), "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert len(image.data) < 40_000
    width, height = Image.open(io.BytesIO(image.data)).size
    assert width == height < 300
    assert caplog.messages[0].endswith(f"WebP {width}x{height}")


def test_fit_gives_up_loudly_when_nothing_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    limit_of(monkeypatch, 10)
    with pytest.raises(ValidationError, match=r"^image 0: fit=True could not bring .* under 10 b"):
        prepare_image(small("GIF"), "image 0", fit=True)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_fit_leaves_an_image_that_fits_byte_identical(fmt: str) -> None:
    data = small(fmt)
    image = prepare_image(data, "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert image.data is data


def test_fit_leaves_a_fitting_data_url_unchanged() -> None:
    url = data_url(small("PNG"), "image/png")
    assert prepare_image(url, "image 0", fit=True) is url


def test_fit_converts_an_oversize_data_url(oversize_png: bytes) -> None:
    image = prepare_image(data_url(oversize_png, "image/png"), "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert image.format == "webp"


def test_fit_converts_an_unsupported_format_keeping_transparency() -> None:
    gif = encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "GIF")
    image = prepare_image(gif, "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert image.format == "webp"
    decoded = Image.open(io.BytesIO(image.data))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0))[3] == 0  # type: ignore[index]


def test_fit_applies_the_exif_orientation_it_would_otherwise_drop() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    tiff = encode(Image.new("RGB", (40, 20)), "TIFF", exif=exif)
    image = prepare_image(tiff, "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert Image.open(io.BytesIO(image.data)).size == (20, 40)


def test_fit_shrinks_an_oversize_pil_image() -> None:
    image = prepare_image(noise_image(), "image 0", fit=True)
    assert isinstance(image, LocalImage)
    assert image.format == "webp"
    assert len(image.data) < LIMIT


def test_fit_reports_content_pillow_cannot_read() -> None:
    with pytest.raises(
        ValidationError, match=r"^image 0: fit=True cannot decode this content: cannot identify"
    ):
        prepare_image(b"plain text, no image", "image 0", fit=True)


def test_fit_without_pillow_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    needs_pillow = r"^fit=True needs Pillow: pip install 'reve-remix\[pillow\]'"
    with pytest.raises(ValidationError, match=needs_pillow):
        prepare_image("https://example.com/cat.png", "image 0", fit=True)


# --- Pillow stays optional -----------------------------------------------------------------------


def test_pillow_is_not_imported_unless_needed(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(small("PNG"))
    script = f"""
import sys
import reve_remix._images as images
assert "PIL" not in sys.modules, "import"
images.prepare_image({str(path)!r}, "image 0")
images.prepare_image(open({str(path)!r}, "rb").read(), "image 1")
images.prepare_image("https://example.com/cat.png", "image 2")
assert "PIL" not in sys.modules, "prepare_image"
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
