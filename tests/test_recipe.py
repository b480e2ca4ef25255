"""Every saved image carries its recipe, read back by ``reve-remix info``; nothing else changes.

The images come from the mock over 127.0.0.1; the files are checked by an independent reader
(Pillow, and a chunk walk written here) so that a recipe writer that broke a CRC, a chunk or a
JPEG segment would fail.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from reve_remix import Recipe, ReveRemix, read_recipe
from reve_remix._recipe import PNG_KEYWORD, embed, sidecar_path
from reve_remix._spec import spec
from reve_remix._version import __version__
from reve_remix.testing import Fault

from .conftest import API_KEY, IMAGE_URL
from .test_cli import remix as cli_remix
from .test_cli import run_cli

SAMPLES = Path(__file__).parents[1] / "reve_remix" / "_samples"
PROMPT = "Put {cat} on {sofa}, as a watercolour"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every chunk of a PNG as (type, data), each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        offset += 12 + length
    assert offset == len(data)
    return chunks


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def remix_named(twin):
    images = {"cat": SAMPLES / "cat.png", "sofa": IMAGE_URL}
    return twin.remix(PROMPT, images, aspect_ratio="16:9", extra_body={"seed": 7})


def test_a_saved_png_holds_its_recipe_and_every_other_chunk_unchanged(server, twin, tmp_path):
    result = remix_named(twin)
    sent = result.read()
    path = twin.call(result, "save", tmp_path / "out.png")
    saved = path.read_bytes()

    added = [chunk for chunk in png_chunks(saved) if chunk not in png_chunks(sent)]
    assert [kind for kind, _ in added] == [b"iTXt"]
    assert [c for c in png_chunks(saved) if c[0] != b"iTXt"] == png_chunks(sent)
    assert png_chunks(saved)[-1] == (b"IEND", b"")
    assert pixels(saved) == pixels(sent)
    with Image.open(path) as image:  # Pillow checks the CRCs and reads the text itself
        image.load()
        recipe = json.loads(image.text[PNG_KEYWORD])

    cat = (SAMPLES / "cat.png").read_bytes()
    assert recipe == {
        "prompt": PROMPT,
        "prompt_sent": "Put <img>0</img> on <img>1</img>, as a watercolour",
        "revised_prompt": result.image.revised_prompt,
        "model": "reve-remix-image-to-image",
        "aspect_ratio": "16:9",
        "output_format": "url",
        "references": [
            {"name": "cat", "file": "cat.png", "sha256": hashlib.sha256(cat).hexdigest()},
            {"name": "sofa", "url": IMAGE_URL},
        ],
        "extra_body": {"seed": 7},
        "request_id": result.request_id,
        "created": result.created,
        "sdk_version": __version__,
    }
    assert read_recipe(path) == result.recipe
    assert API_KEY.encode() not in saved


def test_metadata_false_saves_the_bytes_as_they_came(server, twin, tmp_path):
    result = twin.remix("<img>0</img> at dusk", [IMAGE_URL])
    path = twin.call(result, "save", tmp_path / "plain.png", metadata=False)
    assert path.read_bytes() == result.read()
    assert read_recipe(path) is None
    assert not sidecar_path(path).exists()


def test_inline_images_carry_their_recipe_too(server, twin, tmp_path):
    result = twin.remix("<img>0</img> at dusk", [IMAGE_URL], output_format="b64_json")
    path = twin.call(result.image, "save", tmp_path / "inline.png")
    recipe = read_recipe(path)
    assert recipe is not None
    assert recipe.output_format == "b64_json"


def test_references_name_urls_files_data_urls_and_bytes(server, client, tmp_path):
    cat = (SAMPLES / "cat.png").read_bytes()
    data_url = "data:image/png;base64," + __import__("base64").b64encode(cat).decode()
    digest = hashlib.sha256(cat).hexdigest()
    with (SAMPLES / "cat.png").open("rb") as file:
        result = client.remix(
            "<img>0</img> <img>1</img> <img>2</img> <img>3</img>",
            [str(SAMPLES / "cat.png"), data_url, cat, file],
        )
    assert result.recipe is not None
    assert result.recipe.references == (
        {"file": "cat.png", "sha256": digest},
        {"source": "data: URL", "sha256": digest},
        {"source": "bytes", "sha256": digest},
        {"file": "cat.png", "sha256": digest},
    )


def test_a_jpeg_gets_an_xmp_segment_and_keeps_every_other_byte(tmp_path):
    jpeg = (SAMPLES / "sofa.jpg").read_bytes()
    recipe = Recipe("a <b> & c", "a <b> & c", "m", None, "url", request_id="req-1")
    embedded = embed(jpeg, recipe)
    assert embedded is not None
    # One APP1 segment more, right after the leading APP0/APP1 ones; nothing else moved.
    at = embedded.index(b"\xff\xe1", 2)
    (length,) = struct.unpack(">H", embedded[at + 2 : at + 4])
    assert embedded[:at] + embedded[at + 2 + length :] == jpeg
    assert pixels(embedded) == pixels(jpeg)
    with Image.open(io.BytesIO(embedded)) as image:
        assert b"reve:recipe" in image.info["xmp"]
    (tmp_path / "sofa.jpg").write_bytes(embedded)
    assert read_recipe(tmp_path / "sofa.jpg") == recipe


def test_other_formats_get_a_sidecar(server, client, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "WEBP")
    webp = buffer.getvalue()
    result = client.remix("<img>0</img> in red", [IMAGE_URL])
    path = result.image.write(tmp_path / "red.webp", webp)
    assert path.read_bytes() == webp
    assert sidecar_path(path) == tmp_path / "red.webp.json"
    assert read_recipe(path) == result.recipe


def test_a_png_whose_chunks_cannot_be_followed_is_saved_as_it_came_with_a_sidecar(
    server, client, tmp_path
):
    result = client.remix("<img>0</img> cut", [IMAGE_URL])
    broken = result.read()[:-12] + b"\x00\x00\x01\x00IEND"  # IEND claims more than there is
    path = result.image.write(tmp_path / "cut.png", broken)
    assert path.read_bytes() == broken
    assert read_recipe(path) == result.recipe


def test_a_sidecar_that_cannot_be_written_does_not_lose_the_image(server, client, tmp_path, caplog):
    result = client.remix("<img>0</img> red", [IMAGE_URL])
    (tmp_path / "red.webp.json").mkdir()  # a folder where the sidecar would go
    path = result.image.write(tmp_path / "red.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    assert path.read_bytes().startswith(b"RIFF")
    assert "could not write the recipe" in caplog.text


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path):
    for name in ("cat.png", "sofa.jpg"):
        (tmp_path / name).write_bytes((SAMPLES / name).read_bytes())
    return tmp_path


def test_the_cli_saves_the_recipe_and_info_prints_it(server, workdir):
    done = cli_remix(
        PROMPT, "-i cat=cat.png -i sofa=sofa.jpg -o out.png", cwd=workdir, server=server
    )
    assert done.returncode == 0, done.stderr
    shown = run_cli("info", "out.png", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert f"prompt:         {PROMPT}\n" in shown.stdout
    assert "prompt sent:    Put <img>0</img> on <img>1</img>, as a watercolour\n" in shown.stdout
    assert "image 0:        {cat} cat.png (sha256 " in shown.stdout
    assert "stored in:      PNG iTXt chunk 'reve-remix'" in shown.stdout
    as_json = json.loads(run_cli("info", "out.png", "--json", cwd=workdir).stdout)
    assert as_json["references"][1]["file"] == "sofa.jpg"
    assert as_json["request_id"]


def test_no_metadata_saves_the_image_as_it_came(server, workdir):
    done = cli_remix("<img>0</img> plain", "-i cat.png -o plain.png --no-metadata", cwd=workdir,
                     server=server)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Image.open(workdir / "plain.png").text == {}
    shown = run_cli("info", "plain.png", cwd=workdir)
    assert shown.returncode == 1
    assert "plain.png: no recipe" in shown.stderr


def test_info_on_a_missing_file_is_a_usage_error(workdir):
    shown = run_cli("info", "nope.png", cwd=workdir)
    assert (shown.returncode, shown.stderr) == (2, "reve-remix: error: nope.png: no such file\n")


def test_a_batch_saves_recipes(server, workdir):
    line = {"prompt": "<img>0</img> in a batch", "images": ["cat.png"], "id": "cat"}
    (workdir / "jobs.jsonl").write_text(json.dumps(line) + "\n")
    done = run_cli("batch", "jobs.jsonl", "--out", "out", cwd=workdir, server=server)
    assert done.returncode == 0, done.stderr
    [image] = (workdir / "out").glob("cat*.png")
    recipe = read_recipe(image)
    assert recipe is not None
    assert recipe.prompt == "<img>0</img> in a batch"


# --- remix --dry-run ----------------------------------------------------------------------------


def test_dry_run_prints_the_request_and_sends_nothing(server, workdir):
    done = run_cli(
        "remix", "<img>0</img> and <img>1</img>", "-i", "cat.png", "-i", IMAGE_URL,
        "--aspect-ratio", "16:9", "--dry-run", cwd=workdir, server=server, key=None,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not server.requests
    endpoint, body = done.stdout.split("\n", 1)
    assert endpoint == f"{spec().method} {server.base_url}{spec().path}"
    size = (workdir / "cat.png").stat().st_size
    assert json.loads(body) == {
        "model": "reve-remix-image-to-image",
        "prompt": "<img>0</img> and <img>1</img>",
        "image_urls": [f"data:image/png;base64,… ({size:,} bytes)", IMAGE_URL],
        "aspect_ratio": "16:9",
        "output_format": spec().default_output_format,
        "n": 1,
    }
    assert not list(workdir.glob("*and*"))  # nothing saved


def test_dry_run_never_shows_the_key_and_still_checks_the_images(server, workdir):
    done = run_cli("remix", "<img>0</img>", "-i", "nope.png", "--dry-run", cwd=workdir,
                   server=server)  # fmt: skip
    assert done.returncode == 2
    assert "nope.png" in done.stderr
    done = run_cli("remix", "<img>0</img>", "-i", "cat.png", "--dry-run", "--json", cwd=workdir,
                   server=server)  # fmt: skip
    assert API_KEY not in done.stdout  # run_cli checks it too
    assert json.loads(done.stdout)["endpoint"].startswith("POST http://127.0.0.1:")
    assert not server.requests


def test_a_2xx_error_leaves_no_file(server, workdir):
    server.enqueue(Fault(status=200, body={"error": {"type": "moderation", "message": "no"}}))
    done = cli_remix("<img>0</img>", "-i cat.png -o out.png", cwd=workdir, server=server)
    assert done.returncode == 1
    assert "moderation" in done.stderr
    assert "may have been generated" in done.stderr
    assert not (workdir / "out.png").exists()


def test_a_client_attaches_the_recipe_to_the_result(server):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        result = client.remix("<img>0</img>", [IMAGE_URL], model="other-model")
    assert result.recipe is not None
    assert (result.recipe.model, result.recipe.request_id) == ("other-model", result.request_id)


@pytest.mark.parametrize("kind", ["png", "jpeg", "sidecar"])
def test_text_that_is_not_unicode_round_trips(tmp_path, kind):
    """A server's lone surrogate in the revised prompt is escaped, never a reason to fail."""
    recipe = Recipe("日本の猫", "日本の猫", "m", None, "url", revised_prompt="cat \ud800 rain")
    data = {
        "png": (SAMPLES / "cat.png").read_bytes(),
        "jpeg": (SAMPLES / "sofa.jpg").read_bytes(),
        "sidecar": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    }[kind]
    from reve_remix._recipe import write_with_recipe

    path = write_with_recipe(tmp_path / f"image.{kind}", data, recipe)
    assert read_recipe(path) == recipe
    stored = path.read_bytes() if kind != "sidecar" else sidecar_path(path).read_bytes()
    assert "日本の猫".encode() in stored  # readable, not \u escapes


def test_a_sent_recipe_is_a_recipe_without_the_answer():
    """``SentRecipe.answered`` fills a ``Recipe`` by position: its fields must be the recipe's
    first fields, in order, and the answer's parts the next three."""
    import dataclasses

    from reve_remix._recipe import SentRecipe

    names = [field.name for field in dataclasses.fields(Recipe)]
    assert list(SentRecipe._fields) == names[: len(SentRecipe._fields)]
    sent = SentRecipe("{cat}", "<img>0</img>", "m", "1:1", "url", ({"url": "u"},), {"seed": 7})
    recipe = sent.answered("a cat", "req-1", 7)
    assert recipe == Recipe(*sent, revised_prompt="a cat", request_id="req-1", created=7)
