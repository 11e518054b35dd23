"""Reading OCR files: the four line formats, encodings, line ends, and an error naming file and line for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiforge.errors import InvalidInput, SourceError
from aiforge.evaluate.ocr import Box, parse_line, read_boxes, read_dir


def test_reference_line() -> None:
    box = parse_line("690 130 723 130 723 152 690 152##::AT HIGH\n")
    assert box == Box(((690, 130), (723, 130), (723, 152), (690, 152)), "AT HIGH")
    assert box is not None and box.polygon.area == 33 * 22


def test_reference_line_keeps_everything_after_the_first_separator() -> None:
    box = parse_line("0 0 1 0 1 1##::a##::b, c")
    assert box is not None and box.text == "a##::b, c"
    assert parse_line("0 0 1 0 1 1 0 1##::") == Box(((0, 0), (1, 0), (1, 1), (0, 1)), "")


def test_icdar2013_lines_with_commas_or_spaces() -> None:
    expected = Box(((38, 43), (920, 43), (920, 215), (38, 215)), "Tired, ness")
    assert parse_line('38,43,920,215,"Tired, ness"') == expected
    assert parse_line('38 43 920 215 "Tired, ness"') == expected
    assert parse_line('38, 43, 920, 215, "Tired, ness"', fmt="ic13") == expected


def test_icdar2015_lines_keep_commas_in_the_text() -> None:
    box = parse_line("377,117,463,117,465,130,378,130,Genaxis, Theatre,", fmt="ic15")
    assert box is not None and box.text == "Genaxis, Theatre," and len(box.points) == 4
    assert parse_line("1,1,2,1,2,2,1,2,12,34", fmt="ic15").text == "12,34"  # type: ignore[union-attr]
    assert parse_line("1,1,2,1,2,2,1,2,###").text == "###"  # type: ignore[union-attr]


def test_polygons_with_many_points_and_float_coordinates() -> None:
    box = parse_line("0.5,0,10.25,0,12,5,10,10,0,10,-1.5,5,word")
    assert box is not None and len(box.points) == 6 and box.points[1] == (10.25, 0.0) and box.text == "word"
    assert parse_line("0.5 0 10 0 10 5 7 9 0 5##::x").points[0] == (0.5, 0.0)  # type: ignore[union-attr]


def test_blank_lines_are_skipped() -> None:
    assert parse_line("  \r\n") is None


def test_a_text_that_reads_as_nan_or_infinity_stays_text() -> None:
    # only the even run of leading numbers is the polygon: a trailing "NaN" or "Infinity" is the word on the sign
    assert parse_line("0,0,10,0,10,10,0,10,NaN") == Box(((0, 0), (10, 0), (10, 10), (0, 10)), "NaN")
    assert parse_line("0,0,10,0,10,10,0,10,Infinity,x").text == "Infinity,x"  # type: ignore[union-attr]


def test_a_non_finite_coordinate_in_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "img_1.txt"
    path.write_text("0,0,10,0,10,10,0,10,ok\n0,0,nan,0,10,10,0,10,EXIT\n")
    with pytest.raises(InvalidInput, match=r"^.*img_1.txt:2: expected a finite number, got 'nan'$"):
        read_boxes(path)


@pytest.mark.parametrize(("line", "fmt", "message"), [
    ("0 0 1 x##::t", "auto", r"f.txt:3: expected a number, got 'x'"),
    ("0 0 1##::t", "auto", r"f.txt:3: expected an even number \(at least 2\) of coordinates, got 3"),
    ("##::t", "auto", r"f.txt:3: expected an even number \(at least 2\) of coordinates, got 0"),
    ("hello", "auto", r"f.txt:3: expected `x1,y1,...,xn,yn,text`, got 'hello'"),
    ("0 0 1 1 t", "reference", r"f.txt:3: expected `x1 y1 ... x4 y4##::text`, got '0 0 1 1 t' \(no '##::'\)"),
    ("1,2,3,word", "ic13", r'f.txt:3: expected ICDAR 2013 `xmin,ymin,xmax,ymax,"text"`, got'),
    ("1,2,3,4,word", "ic15", r"f.txt:3: expected 8 comma-separated coordinates then the text"),
    ("1,2,3,4,5,6,a,8,w", "ic15", r"f.txt:3: expected a number, got 'a'"),
    ("0 0 inf 0 1 1##::t", "auto", r"f.txt:3: expected a finite number, got 'inf'"),
    ("0,0,nan,0,10,10,0,10,word", "auto", r"f.txt:3: expected a finite number, got 'nan'"),
    ("0,0,10,0,10,10,0,inf,word", "polygon", r"f.txt:3: expected a finite number, got 'inf'"),
    ("0,0,10,-Infinity,10,10,0,10,word", "auto", r"f.txt:3: expected a finite number, got '-Infinity'"),
    ("1e999,0,10,0,word", "auto", r"f.txt:3: expected a finite number, got '1e999'"),
    ("0,0,10,0,10,10,0,nan,word", "ic15", r"f.txt:3: expected a finite number, got 'nan'"),
    ('0,0,nan,10,"word"', "ic13", r"f.txt:3: expected a finite number, got 'nan'"),
    ("0 0 1 1##::t", "csv", r"^unknown OCR file format 'csv'; expected one of auto, reference, ic13, ic15, polygon$"),
    ("0 0 1 1##::t", "icdar2013", r"^unknown OCR file format 'icdar2013'; expected one of auto, reference, ic13, "),
])
def test_bad_lines_name_the_file_and_line(line: str, fmt: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_line(line, fmt=fmt, where="f.txt:3")  # type: ignore[arg-type]


def test_box_validation() -> None:
    with pytest.raises(InvalidInput, match="a box needs at least one point"):
        Box((), "x")
    with pytest.raises(InvalidInput, match="box coordinates must be finite numbers"):
        Box(((float("nan"), 0),), "x")


def test_files_with_bom_crlf_and_utf8(tmp_path: Path) -> None:
    path = tmp_path / "kr.txt"
    path.write_bytes("\ufeff0 0 4 0 4 2 0 2##::교환/환불\r\n\r\n1,1,5,1,5,3,1,3,Hi, there\r\n".encode())
    boxes = read_boxes(path)
    assert [(b.text, b.line) for b in boxes] == [("교환/환불", 1), ("Hi, there", 3)]


def test_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"0 0 1 0 1 1##::ok\n0 0 1 0 1 1##::\xff\n")
    with pytest.raises(InvalidInput, match=r"bad.txt:2: not valid UTF-8 \(byte 33\); save the file as UTF-8"):
        read_boxes(path)
    path.write_text("0 0 1 0 1 1##::ok\n0 0 1 0 1##::t\n")
    with pytest.raises(InvalidInput, match=r"bad.txt:2: expected an even number"):
        read_boxes(path)
    with pytest.raises(SourceError, match=r"cannot read OCR file .*nope.txt"):
        read_boxes(tmp_path / "nope.txt")
    with pytest.raises(SourceError, match=r"OCR folder .*nodir does not exist or is not a folder"):
        read_dir(tmp_path / "nodir")


def test_read_dir_sorts_and_filters(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("0 0 1 0 1 1##::B\n")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "notes.md").write_text("not a box")
    assert {k: [b.text for b in v] for k, v in read_dir(tmp_path).items()} == {"a.txt": [], "b.txt": ["B"]}


coords = st.lists(st.tuples(st.integers(-5000, 5000), st.integers(-5000, 5000)), min_size=1, max_size=12)
line_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20)


@settings(max_examples=100, deadline=None)
@given(coords, line_text)
def test_reference_format_round_trips(points: list[tuple[int, int]], text: str) -> None:
    line = " ".join(f"{x} {y}" for x, y in points) + "##::" + text
    assert parse_line(line) == Box(tuple(points), text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)), min_size=4, max_size=4), line_text)
def test_icdar2015_format_round_trips(points: list[tuple[float, float]], text: str) -> None:
    line = ",".join(f"{x!r},{y!r}" for x, y in points) + "," + text
    assert parse_line(line, fmt="ic15") == Box(tuple(points), text)
