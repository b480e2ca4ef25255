"""A recorded exchange, replayed offline: recorded once with --reve-remix-record=once."""

from pathlib import Path

from reve_remix import ReveRemix

CAT = Path(__file__).with_name("cat.png")


def test_watercolour_from_the_recording(reve_remix_cassette, tmp_path):
    with ReveRemix() as client:
        url_result = client.remix("<img>0</img> as a watercolour", [CAT], aspect_ratio="3:2")
        saved = url_result.save(tmp_path / "watercolour.png")
        inline = client.remix("<img>0</img> at night", [CAT], output_format="b64_json")
    assert saved.read_bytes().startswith(b"\x89PNG")
    assert inline.read().startswith(b"\x89PNG")
    assert url_result.image.revised_prompt == "image 0 as a watercolour"
