"""The ``<img>N</img>`` helpers: each documented rule, each malformed case, and properties."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reve_remix._exceptions import ValidationError
from reve_remix._tags import (
    MAX_IMAGES,
    MIN_IMAGES,
    TagProblem,
    bind_images,
    check_prompt,
    find_tag_problems,
    img,
    referenced_indices,
    reindex,
)

# Text that often contains tags, near-tags and braces, so that properties reach the parsers'
# corners instead of only plain text.
FRAGMENTS = st.sampled_from(
    [
        "<img>", "</img>", "<IMG>", "</Img>", "<ref>", "</ref>", "0", "1", "3", "7", "01", " ",
        "\n", "\t", "a", "cat", "{", "}", "{{", "}}", "{cat}", "{sofa}", "{0}", "{}", "<", ">",
    ]
)  # fmt: skip
TAGGY_TEXT = st.lists(FRAGMENTS | st.text(max_size=5), max_size=30).map("".join)
ANY_TEXT = st.text() | TAGGY_TEXT
SETTINGS = settings(max_examples=150, deadline=None)
# The spec's limits (maxItems, minItems), as the messages state them: never today's numbers.
LAST = MAX_IMAGES - 1
INDICES = f"from 0 to {LAST}"
COUNTS = f"between {MIN_IMAGES} and {MAX_IMAGES}"


def only_problem(prompt: str, image_count: int | None = None) -> TagProblem:
    problems = find_tag_problems(prompt, image_count)
    assert len(problems) == 1, problems
    return problems[0]


# --- img -------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(MAX_IMAGES))
def test_img_writes_the_documented_tag(index: int):
    assert img(index) == f"<img>{index}</img>"


@pytest.mark.parametrize("index", [-1, MAX_IMAGES, MAX_IMAGES + 6, True, False, 1.0, "1", None])
def test_img_rejects_anything_but_an_index_of_an_image(index: object):
    with pytest.raises(ValidationError, match=f"img: the index must be an int {INDICES}"):
        img(index)  # type: ignore[arg-type]


# --- referenced_indices ----------------------------------------------------------------------


def test_referenced_indices_keeps_order_and_repeats():
    assert referenced_indices("<img>2</img> then <img>0</img>, again <img>2</img>") == [2, 0, 2]


def test_referenced_indices_counts_well_formed_variants_and_out_of_range():
    prompt = "<IMG>1</IMG> <img> 2 </img> <img>03</img> <img>9</img>"
    assert referenced_indices(prompt) == [1, 2, 3, 9]


@pytest.mark.parametrize(
    "prompt",
    ["<img>a</img>", "<img>1", "<ref>1</ref>", "<img>1</ref>", "</img>", "< img >1</img>", ""],
)
def test_referenced_indices_skips_malformed_tags(prompt: str):
    assert referenced_indices(prompt) == []


def test_an_unclosed_opener_does_not_swallow_the_tag_after_it():
    prompt = "<img><img>0</img>"
    assert referenced_indices(prompt) == [0]
    assert only_problem(prompt).text == "<img>"


# --- find_tag_problems: the table of the module docstring ------------------------------------


@pytest.mark.parametrize(
    ("prompt", "severity", "text", "says", "fix"),
    [
        ("x <img>a</img> y", "error", "<img>a</img>", "does not hold an image index", "<img>N"),
        ("x <img></img> y", "error", "<img></img>", "does not hold an image index", "<img>N"),
        ("x <img>1 y", "error", "<img>1", "never closed", "Write <img>1</img>."),
        ("x <img> y", "error", "<img>", "never closed", f"<img>N</img> with N {INDICES}"),
        ("x </img> y", "error", "</img>", "closes no tag", "Delete it, or write <img>N</img>"),
        ("x <ref>1</ref> y", "error", "<ref>1</ref>", "Reve's own API", "Write <img>1</img>."),
        ("x <img>1</ref> y", "error", "<img>1</ref>", "closed by `</ref>`", "<img>1</img>."),
        (
            f"x <img>{MAX_IMAGES}</img> y",
            "error",
            f"<img>{MAX_IMAGES}</img>",
            f"there is no image {MAX_IMAGES}",
            INDICES,
        ),
        (
            f"x <IMG>{LAST + 4}</IMG> y",
            "error",
            f"<IMG>{LAST + 4}</IMG>",
            "not lower case",
            INDICES,
        ),
        ("x <IMG>1</IMG> y", "warning", "<IMG>1</IMG>", "not lower case", "Write <img>1</img>."),
        ("x <img>1</IMG> y", "warning", "<img>1</IMG>", "not lower case", "Write <img>1</img>."),
        ("x <img> 1 </img> y", "warning", "<img> 1 </img>", "whitespace", "<img>1</img>."),
        ("x <img>01</img> y", "warning", "<img>01</img>", "leading zero", "<img>1</img>."),
    ],
)
def test_each_malformed_case_has_its_documented_outcome(
    prompt: str, severity: str, text: str, says: str, fix: str
):
    problem = only_problem(prompt)
    assert (problem.start, problem.end) == (2, 2 + len(text))
    assert prompt[problem.start : problem.end] == problem.text == text
    assert problem.severity == severity
    assert says in problem.message
    assert fix in problem.message
    assert str(problem) == f"{severity} at position 2: {problem.message}"


def test_the_documented_spelling_has_no_problem():
    assert find_tag_problems("Put <img>0</img> on <img>3</img>") == []


def test_space_inside_the_angle_brackets_is_not_a_marker():
    problem = only_problem("< img >1</img>")
    assert (problem.text, problem.severity) == ("</img>", "error")


@pytest.mark.parametrize(("image_count", "index"), [(1, 1), (2, 2), (3, 3)])
def test_an_index_at_or_past_image_count_is_an_error(image_count: int, index: int):
    problem = only_problem(f"<img>{index}</img>", image_count)
    assert problem.severity == "error"
    assert f"there is no image {index}" in problem.message
    assert find_tag_problems(f"<img>{index - 1}</img>", image_count) == []


def test_out_of_range_is_an_error_even_in_a_merely_non_canonical_tag():
    assert only_problem("<img> 2 </img>", image_count=2).severity == "error"


def test_a_huge_index_is_reported_briefly():
    prompt = f"<img>{'9' * 5000}</img>"
    problem = only_problem(prompt)
    assert problem.severity == "error"
    assert problem.text == prompt
    assert len(problem.message) < 300


@pytest.mark.parametrize("image_count", [0, MAX_IMAGES + 1, -1, True, 2.0, "2"])
def test_image_count_must_be_a_possible_number_of_images(image_count: object):
    with pytest.raises(ValidationError, match="image_count"):
        find_tag_problems("x", image_count)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        find_tag_problems,
        referenced_indices,
        lambda prompt: check_prompt(prompt, 1),
        lambda prompt: bind_images(prompt, {"cat": 0}),
        lambda prompt: reindex(prompt, [0]),
    ],
)
def test_a_prompt_that_is_not_text_is_a_validation_error(call: Callable[[Any], object]):
    with pytest.raises(ValidationError, match="prompt: expected a str, got bytes"):
        call(b"<img>0</img>")


# --- check_prompt ----------------------------------------------------------------------------


def test_check_prompt_returns_the_warnings():
    warnings = check_prompt("Put <img>0</img> on <IMG>1</IMG>", image_count=2)
    assert [(w.text, w.severity) for w in warnings] == [("<IMG>1</IMG>", "warning")]


def test_check_prompt_lists_every_error_with_position_and_fix():
    with pytest.raises(ValidationError) as caught:
        check_prompt("<img>a</img> and <IMG>1</IMG> and <img>2</img>", image_count=2)
    message = str(caught.value)
    assert message.startswith("prompt: 2 problems:\n")
    assert "at position 0: `<img>a</img>`" in message
    assert "at position 34: `<img>2</img>`: there is no image 2" in message
    assert "<IMG>1</IMG>" not in message


def test_check_prompt_caps_a_long_list_of_errors():
    with pytest.raises(ValidationError, match=r"… and 90 more$"):
        check_prompt("</img>" * 100, image_count=1)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_check_prompt_rejects_an_empty_prompt(prompt: str):
    with pytest.raises(ValidationError, match="prompt: must not be empty or blank"):
        check_prompt(prompt, 1)


# --- bind_images -----------------------------------------------------------------------------


def test_bind_numbers_images_by_first_appearance():
    prompt, images = bind_images("Put {cat} on {sofa}", {"sofa": "b", "cat": "a"})
    assert (prompt, images) == ("Put <img>0</img> on <img>1</img>", ["a", "b"])


def test_bind_reuses_the_index_of_a_name_used_twice():
    assert bind_images("{a} and {b} and {a}", {"a": 1, "b": 2}) == (
        "<img>0</img> and <img>1</img> and <img>0</img>",
        [1, 2],
    )


def test_bind_sends_unnamed_images_after_the_named_ones_in_mapping_order():
    assert bind_images("{sofa}", {"style": 1, "sofa": 2, "light": 3}) == ("<img>0</img>", [2, 1, 3])


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("{{cat}}", "{cat}"),
        ("{{{cat}}}", "{<img>0</img>}"),
        ("a }} b {{", "a } b {"),
        ("{cat-2} {_x}", "<img>0</img> <img>1</img>"),
    ],
)
def test_bind_braces_follow_str_format(prompt: str, expected: str):
    assert bind_images(prompt, {"cat": 0, "cat-2": 1, "_x": 2})[0] == expected


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("Put {dog} here", r"`\{dog\}` at position 4: no image is named 'dog'; known names: cat"),
        ("Put { here", r"`\{` at position 4: lone brace; write \{\{"),
        ("Put } here", r"`\}` at position 4: lone brace; write \}\}"),
        ("{{cat}", r"`\}` at position 5: lone brace"),
        ("Put {} here", r"`\{\}` at position 4: positional fields are not supported"),
        ("Put {0} here", r"`\{0\}` at position 4: positional fields are not supported"),
        ("Put {cat.__class__} here", r"position 4: not an image name"),
        ("Put {cat!r} here", r"position 4: not an image name"),
        ("Put {cat:>9} here", r"position 4: not an image name"),
        ("Put { cat } here", r"position 4: not an image name"),
        ("Put {2cat} here", r"position 4: not an image name"),
        ("{cat} on <img>0</img>", r"`<img>0</img>` at position 9: numbered tags cannot be mixed"),
        ("{cat} on <img>a</img>", r"`<img>a</img>` at position 9: numbered tags cannot be mixed"),
        ("{cat} on </img>", r"`</img>` at position 9: numbered tags cannot be mixed"),
        ("   ", r"prompt: must not be empty or blank"),
    ],
)
def test_bind_rejects_what_it_cannot_bind(prompt: str, says: str):
    with pytest.raises(ValidationError, match=says):
        bind_images(prompt, {"cat": "cat.png"})


def test_bind_lists_every_problem_in_order_of_position():
    with pytest.raises(ValidationError) as caught:
        bind_images("<img>0</img> {dog} } {}", {"cat": 1})
    positions = [
        line.split(" at position ")[1].split(":")[0] for line in str(caught.value).splitlines()[1:]
    ]
    assert positions == ["0", "13", "19", "21"]


@pytest.mark.parametrize(
    ("images", "says"),
    [
        ({}, f"images: give {COUNTS} images, got 0"),
        (
            {f"i{n}": n for n in range(MAX_IMAGES + 1)},
            f"images: give {COUNTS} images, got {MAX_IMAGES + 1}",
        ),
        ({"a b": 1}, "images: 'a b' is not a usable name"),
        ({1: 1}, "images: 1 is not a usable name"),
        (["cat.png"], "images: expected a mapping from names to images, got list"),
    ],
)
def test_bind_rejects_a_bad_mapping(images: object, says: str):
    with pytest.raises(ValidationError, match=says):
        bind_images("a cat", images)  # type: ignore[arg-type]


# --- reindex ---------------------------------------------------------------------------------


def test_reindex_follows_the_new_order():
    assert reindex("<img>0</img> <img>1</img> <img>2</img>", [2, 0, 1]) == (
        "<img>1</img> <img>2</img> <img>0</img>"
    )


def test_reindex_refuses_to_keep_a_tag_whose_image_is_gone():
    with pytest.raises(ValidationError) as caught:
        reindex("<img>0</img> and <img>1</img> and <img>1</img>", [0])
    message = str(caught.value)
    assert "`<img>1</img>` at position 17 points at old image 1, which order [0]" in message
    assert "at position 34" in message
    assert "drop_references=True" in message


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Put <img>1</img> on it", "Put on it"),
        ("a cat <img>1</img>.", "a cat."),
        ("a cat <img>1</img>", "a cat"),
        ("<img>1</img> is a cat", "is a cat"),
        ("cat<img>1</img> dog", "cat dog"),
        ("x\n<img>1</img>\ty", "x\ny"),
        ("x\n  <img>1</img> y", "x\ny"),
        ("<img>1</img> <img>1</img> <img>0</img> a", "<img>0</img> a"),
        ("a <img>1</img>\n\nb", "a\n\nb"),
    ],
)
def test_dropped_references_take_their_surrounding_blanks_with_them(prompt: str, expected: str):
    assert reindex(prompt, [0], drop_references=True) == expected


def test_dropping_refuses_to_join_malformed_markers_into_a_new_tag():
    with pytest.raises(ValidationError, match="would turn malformed tags"):
        reindex("<img><img>1</img>3</img>", [0], drop_references=True)


def test_reindex_keeps_the_spelling_of_non_canonical_tags():
    assert reindex("<IMG> 01 </img>", [1, 0]) == "<IMG> 00 </img>"


def test_reindex_leaves_malformed_tags_as_written():
    prompt = "<img>a</img> <ref>1</ref> <img>1"
    assert reindex(prompt, [1, 0]) == prompt


@pytest.mark.parametrize(
    ("order", "says"),
    [
        ([], f"order: give between 1 and {MAX_IMAGES} old indices, got 0"),
        (
            [*range(MAX_IMAGES), 0],
            f"order: give between 1 and {MAX_IMAGES} old indices, got {MAX_IMAGES + 1}",
        ),
        ([0, 0], "order: old index 0 appears twice in"),
        ([MAX_IMAGES], f"order: {MAX_IMAGES} is not an image index"),
        ([-1], "order: -1 is not an image index"),
        ([True], "order: True is not an image index"),
        ("10", "order: '1' is not an image index"),
        ({0, 1}, "order: expected a sequence of old image indices, got set"),
    ],
)
def test_reindex_rejects_an_impossible_order(order: object, says: str):
    with pytest.raises(ValidationError, match=says):
        reindex("<img>0</img>", order)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------


@SETTINGS
@given(ANY_TEXT, st.none() | st.integers(1, MAX_IMAGES))
def test_find_tag_problems_never_crashes_and_points_at_what_it_reports(
    prompt: str, image_count: int | None
):
    problems = find_tag_problems(prompt, image_count)
    assert [p.start for p in problems] == sorted(p.start for p in problems)
    for problem in problems:
        assert prompt[problem.start : problem.end] == problem.text
        assert problem.severity in ("error", "warning")
    limit = image_count or MAX_IMAGES
    out_of_range = [i for i in referenced_indices(prompt) if i >= limit]
    assert len(out_of_range) <= sum(p.severity == "error" for p in problems)


@SETTINGS
@given(
    ANY_TEXT,
    st.dictionaries(st.text(max_size=6) | st.sampled_from(["cat", "sofa"]), st.integers()),
    st.lists(st.integers(-1, 5), max_size=6),
    st.integers(-1, 5),
    st.booleans(),
)
def test_the_helpers_raise_nothing_but_validation_error(
    prompt: str, images: dict[str, int], order: list[int], image_count: int, drop: bool
):
    for call in (
        lambda: check_prompt(prompt, image_count),
        lambda: bind_images(prompt, images),
        lambda: reindex(prompt, order, drop_references=drop),
    ):
        with contextlib.suppress(ValidationError):
            call()


NAMES = ["cat", "sofa", "lamp", "x-2", "_y"]


@st.composite
def named_prompts(draw: st.DrawFn) -> tuple[str, dict[str, object], list[str]]:
    """A template over some of NAMES, its mapping, and the names in order of appearance."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=MAX_IMAGES, unique=True))
    mapping = {name: object() for name in names}
    plain = st.text(st.characters(exclude_characters="{}<"), max_size=8)
    part = plain | st.sampled_from(["{{", "}}", *names])
    parts = draw(st.lists(part, min_size=1, max_size=12))
    assume("".join(parts).strip())
    template = "".join(part if part not in mapping else f"{{{part}}}" for part in parts)
    return template, mapping, [part for part in parts if part in mapping]


@SETTINGS
@given(named_prompts())
def test_bound_tags_point_at_the_images_they_named(
    case: tuple[str, dict[str, object], list[str]],
):
    template, mapping, used = case
    prompt, images = bind_images(template, mapping)
    indices = referenced_indices(prompt)
    distinct = list(dict.fromkeys(used))
    assert indices == [distinct.index(name) for name in used]
    assert all(images[index] is mapping[name] for index, name in zip(indices, used, strict=True))
    assert sorted(map(id, images)) == sorted(map(id, mapping.values()))
    assert check_prompt(prompt, len(images)) == []


@SETTINGS
@given(ANY_TEXT)
def test_check_prompt_accepts_whatever_bind_images_produces(template: str):
    try:
        prompt, images = bind_images(template, {"cat": 0, "sofa": 1})
    except ValidationError:
        return
    assert check_prompt(prompt, len(images)) == []


@st.composite
def prompts_with_tags(draw: st.DrawFn, image_count: int) -> str:
    """Text with well-formed tags in any spelling, all within ``image_count`` images."""
    index = st.integers(0, image_count - 1)
    spellings = st.sampled_from(["<img>{}</img>", "<IMG> {} </img>", "<img>0{}</img>"])
    tags = st.builds(str.format, spellings, index)
    return "".join(draw(st.lists(ANY_TEXT | tags, max_size=10)))


@SETTINGS
@given(st.data(), st.integers(1, MAX_IMAGES))
def test_reindex_then_the_inverse_order_gives_the_prompt_back(data: st.DataObject, count: int):
    prompt = data.draw(prompts_with_tags(count))
    assume(all(index < count for index in referenced_indices(prompt)))
    order = data.draw(st.permutations(range(count)))
    inverse = sorted(range(count), key=order.__getitem__)
    assert reindex(reindex(prompt, order), inverse) == prompt


@SETTINGS
@given(st.data(), st.integers(1, MAX_IMAGES))
def test_reindex_with_the_identity_order_changes_nothing(data: st.DataObject, count: int):
    prompt = data.draw(prompts_with_tags(count))
    assume(all(index < count for index in referenced_indices(prompt)))
    assert reindex(prompt, range(count)) == prompt


@SETTINGS
@given(
    ANY_TEXT | prompts_with_tags(MAX_IMAGES),
    st.lists(st.integers(0, MAX_IMAGES - 1), min_size=1, max_size=MAX_IMAGES, unique=True),
)
def test_reindexed_tags_are_always_in_range(prompt: str, order: list[int]):
    assume(all(index < MAX_IMAGES for index in referenced_indices(prompt)))
    try:
        result = reindex(prompt, order, drop_references=True)
    except ValidationError as exc:
        error = str(exc)
    else:
        kept = [order.index(old) for old in referenced_indices(prompt) if old in order]
        assert referenced_indices(result) == kept
        return
    assert "would turn malformed tags" in error


# --- speed: every scan is linear -------------------------------------------------------------


HOSTILE = [  # (head, unit, tail): a prompt of the unit repeated between them
    ("", "<img>", ""),
    ("", "</img>", ""),
    ("<img>", "1", ""),
    ("<img>", " ", "1"),
    ("", "<", ""),
    ("", "<img>0</img>", ""),
    ("", "{", ""),
    ("{", "a", ""),
    ("", "{a", ""),
]


def _scan_everything(prompt: str) -> None:
    find_tag_problems(prompt)
    referenced_indices(prompt)
    for call in (
        lambda: check_prompt(prompt, MAX_IMAGES),
        lambda: bind_images(prompt, {"a": 0}),
        lambda: reindex(prompt, [1, 0], drop_references=True),
    ):
        with contextlib.suppress(ValidationError):
            call()


def _cpu_seconds(prompt: str) -> float:
    """The least CPU time of three scans: this process's own, which no other process takes."""
    times = []
    for _ in range(3):
        started = time.process_time()
        _scan_everything(prompt)
        times.append(time.process_time() - started)
    return min(times)


@pytest.mark.parametrize(("head", "unit", "tail"), HOSTILE, ids=lambda part: repr(part))
def test_huge_hostile_prompts_are_handled_in_linear_time(head: str, unit: str, tail: str):
    # A ratio, not a bound: four times the prompt takes about four times the CPU if every scan
    # is linear, sixteen times if one is quadratic. Coverage or a slow machine slows both alike.
    count = 100_000 // len(unit)
    small, large = (head + unit * n + tail for n in (count // 4, count))
    gc.disable()  # a collection in one run and not the other would skew the ratio
    try:
        ratio = _cpu_seconds(large) / max(_cpu_seconds(small), 1e-4)
    finally:
        gc.enable()
    assert ratio < 8, ratio


FRAGMENTS = st.sampled_from(
    [
        "<img>0</img>",
        "<img>1</img>",
        "<img>3</img>",
        "<IMG>0</IMG>",
        "<img> 1 </img>",
        "<img>01</img>",
        "<ref>0</ref>",
        "<img>",
        "</img>",
        "<Img>",
        "<",
        ">",
        "< img >",
        "a",
        " ",
        "{x}",
        "\n",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(FRAGMENTS | st.text(max_size=3), max_size=8),
    count=st.integers(MIN_IMAGES, MAX_IMAGES),
)
def test_check_prompts_fast_path_agrees_with_the_full_scan(parts, count):
    """check_prompt skips the scan for prompts whose tags are all canonical and in range."""
    prompt = "x" + "".join(parts)
    problems = find_tag_problems(prompt, count)
    if any(p.severity == "error" for p in problems):
        with pytest.raises(ValidationError):
            check_prompt(prompt, count)
    else:
        assert check_prompt(prompt, count) == problems
