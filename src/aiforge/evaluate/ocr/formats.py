"""Reading OCR ground truth and predictions: one text file per image, one box per line.

Four line formats are understood, and ``fmt="auto"`` tells them apart line by line:

``reference``
    PopEval's own format, ``x1 y1 x2 y2 x3 y3 x4 y4##::text``; any even number of coordinates, separated by spaces
    or commas. The text is everything after the first ``##::`` and may contain anything.
``ic13``
    ICDAR 2013, ``xmin,ymin,xmax,ymax,"text"`` (commas or spaces), an axis-aligned rectangle with the text in double
    quotes.
``ic15``
    ICDAR 2015, ``x1,y1,x2,y2,x3,y3,x4,y4,text``: exactly eight coordinates; the text is the rest of the line, commas
    included.
``polygon``
    ``x1,y1,...,xn,yn,text`` (CLEval, Total-Text): the longest even run of leading numbers is the polygon, the rest
    of the line is the text. ``auto`` reads comma-separated lines this way, so for a four-point file whose texts may
    start with ``number,number`` pass ``fmt="ic15"``.

Coordinates may be integers or floats, never ``nan`` or ``inf``: that is an error naming the file and line in every
format (a polygon whose even run of leading numbers holds one is not cut short before it). Files are UTF-8, with or
without a byte-order mark, with LF or CRLF line ends. Blank lines are skipped; any other line that cannot be read
raises :class:`~aiforge.errors.InvalidInput` naming the file and the line number.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from aiforge.errors import InvalidInput, SourceError

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

__all__ = ["FORMATS", "Box", "parse_line", "polygons", "read_boxes", "read_dir"]

Format = Literal["auto", "reference", "ic13", "ic15", "polygon"]
#: The line formats, by the names the CLI (``--format``) and the guide use.
FORMATS: tuple[str, ...] = typing.get_args(Format)

_SEPARATOR = "##::"
_IC13 = re.compile(r'^\s*([^,\s]+)\s*[,\s]\s*([^,\s]+)\s*[,\s]\s*([^,\s]+)\s*[,\s]\s*([^,\s]+)\s*[,\s]\s*"(.*)"\s*$')


@dataclass(frozen=True)
class Box:
    """One text box: a polygon and its transcription.

    Parameters
    ----------
    points : sequence of (x, y)
        The polygon's vertices, at least one; the region is their convex hull (as in the reference implementation).
    text : str
        The transcription; ``"###"`` marks a don't-care region in ground truth.

    Examples
    --------
    >>> b = Box(((0, 0), (10, 0), (10, 5), (0, 5)), "EXIT")
    >>> b.polygon.area
    50.0
    """

    points: tuple[tuple[float, float], ...]
    text: str
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        pts = tuple((float(x), float(y)) for x, y in self.points)
        if not pts:
            raise InvalidInput(f"a box needs at least one point; got none (text {self.text!r})")
        if not all(math.isfinite(v) for p in pts for v in p):
            raise InvalidInput(f"box coordinates must be finite numbers; got {pts} (text {self.text!r})")
        object.__setattr__(self, "points", pts)

    @cached_property
    def polygon(self) -> BaseGeometry:
        """The convex hull of the points (a Polygon, or a LineString/Point for degenerate boxes)."""
        return polygons([self])[0]


def polygons(boxes: Sequence[Box]) -> np.ndarray:
    """The boxes' polygons as an object array, building the missing ones in one vectorised call (and caching them).

    Examples
    --------
    >>> polygons([Box(((0, 0), (2, 0), (1, 1), (2, 2), (0, 2)), "x")])[0].area
    4.0
    """
    import shapely

    missing = [b for b in boxes if "polygon" not in b.__dict__]
    if missing:
        coords = np.array([p for b in missing for p in b.points], dtype=float)
        index = np.repeat(np.arange(len(missing)), [len(b.points) for b in missing])
        hulls = shapely.convex_hull(shapely.multipoints(coords, indices=index))
        for box, hull in zip(missing, hulls, strict=True):
            box.__dict__["polygon"] = hull  # what cached_property would store
    return np.array([b.__dict__["polygon"] for b in boxes], dtype=object)


def _number(token: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise InvalidInput(f"{where}: expected a number, got {token!r}") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{where}: expected a finite number, got {token!r}")
    return value


def _pairs(values: Sequence[float], where: str) -> tuple[tuple[float, float], ...]:
    if len(values) < 2 or len(values) % 2:
        raise InvalidInput(f"{where}: expected an even number (at least 2) of coordinates, got {len(values)}")
    return tuple(zip(values[0::2], values[1::2], strict=True))


def _parsed_box(points: tuple[tuple[float, float], ...], text: str, line: int) -> Box:
    """A :class:`Box` from points a parser has already made floats, checked finite and counted (at least one).

    Skips ``__post_init__``, which would convert and check every coordinate again: on a file of thousands of
    boxes that second pass cost as much as the parsing itself.
    """
    box = object.__new__(Box)
    box.__dict__.update(points=points, text=text, line=line)
    return box


def _is_float(token: str) -> bool:
    """Whether ``float`` reads the token, ``nan`` and ``inf`` included: they are coordinates, if bad ones."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def _reference(line: str, where: str) -> tuple[tuple[tuple[float, float], ...], str]:
    coords, _, text = line.partition(_SEPARATOR)
    tokens = coords.replace(",", " ").split()
    try:  # the common case in one pass; a bad token, or a sum that is not finite, takes the checking path
        values = [float(t) for t in tokens]
    except ValueError:
        values = []
    if len(values) != len(tokens) or not math.isfinite(sum(values)):
        values = [_number(t, where) for t in tokens]
    return _pairs(values, where), text


def _ic13(line: str, where: str) -> tuple[tuple[tuple[float, float], ...], str]:
    match = _IC13.match(line)
    if match is None:
        raise InvalidInput(f'{where}: expected ICDAR 2013 `xmin,ymin,xmax,ymax,"text"`, got {line!r}')
    x0, y0, x1, y1 = (_number(match.group(i), where) for i in range(1, 5))
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), match.group(5)


def _comma(line: str, where: str, n_coords: int | None) -> tuple[tuple[tuple[float, float], ...], str]:
    tokens = line.split(",")
    if n_coords is None:  # the longest even run of leading numbers
        n = 0
        while n < len(tokens) and _is_float(tokens[n]):
            n += 1
        n -= n % 2
    else:
        n = n_coords
        if len(tokens) < n:
            raise InvalidInput(f"{where}: expected {n} comma-separated coordinates then the text, got {line!r}")
    if n < 2:
        raise InvalidInput(f"{where}: expected `x1,y1,...,xn,yn,text`, got {line!r}")
    values = [_number(t.strip(), where) for t in tokens[:n]]
    return _pairs(values, where), ",".join(tokens[n:])


def parse_line(line: str, *, fmt: Format = "auto", where: str = "<line>", line_number: int = 0) -> Box | None:
    """Parse one line into a :class:`Box`; ``None`` for a blank line.

    Parameters
    ----------
    line : str
        The line, without or with its line end.
    fmt : {"auto", "reference", "ic13", "ic15", "polygon"}, default "auto"
        The line format (see the module docstring).
    where : str
        ``file:line`` used in error messages.
    line_number : int, default 0
        Stored in the box's ``line``.

    Returns
    -------
    Box or None

    Raises
    ------
    InvalidInput
        The line is not in the format.

    Examples
    --------
    >>> parse_line("0 0 10 0 10 5 0 5##::EXIT").text
    'EXIT'
    >>> parse_line('1,2,30,40,"Tiredness"', fmt="ic13").points[2]
    (30.0, 40.0)
    >>> parse_line("0,0,10,0,10,5,0,5,Hello, world").text
    'Hello, world'
    """
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if fmt == "auto":
        if _SEPARATOR in line:
            fmt = "reference"
        elif _IC13.match(line) and line.rstrip().endswith('"'):
            fmt = "ic13"
        else:
            fmt = "polygon"
    if fmt == "reference":
        if _SEPARATOR not in line:
            raise InvalidInput(f"{where}: expected `x1 y1 ... x4 y4##::text`, got {line!r} (no '##::')")
        points, text = _reference(line, where)
    elif fmt == "ic13":
        points, text = _ic13(line, where)
    elif fmt == "ic15":
        points, text = _comma(line, where, 8)
    elif fmt == "polygon":
        points, text = _comma(line, where, None)
    else:
        raise InvalidInput(f"unknown OCR file format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return _parsed_box(points, text, line_number)


def read_boxes(path: str | Path, *, fmt: Format = "auto") -> list[Box]:
    """Read one image's boxes from a text file.

    Parameters
    ----------
    path : str or Path
        A UTF-8 text file (byte-order mark and CRLF accepted), one box per line.
    fmt : {"auto", "reference", "ic13", "ic15", "polygon"}, default "auto"

    Returns
    -------
    list of Box
        In file order; each box records its 1-based line number in ``line``.

    Raises
    ------
    SourceError
        The file cannot be read.
    InvalidInput
        A line is malformed or the file is not UTF-8; the message names the file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "img_1.txt"
    >>> _ = p.write_bytes("\\ufeff0 0 4 0 4 2 0 2##::ok\\r\\n".encode())
    >>> [(b.text, b.line) for b in read_boxes(p)]
    [('ok', 1)]
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read OCR file {path}: {exc.strerror or exc}") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8") from exc
    boxes = []
    reference = fmt in ("auto", "reference")
    for number, line in enumerate(content.split("\n"), start=1):
        if reference:  # parse_line's reference case inlined: most files are thousands of such lines
            coords, separator, text = line.rstrip("\r\n").partition(_SEPARATOR)
            if separator:
                tokens = coords.replace(",", " ").split()
                try:
                    values = [float(t) for t in tokens]
                except ValueError:  # parse_line says what is wrong
                    values = []
                if values and not len(values) % 2 and math.isfinite(sum(values)):
                    boxes.append(_parsed_box(tuple(zip(values[0::2], values[1::2], strict=True)), text, number))
                    continue
        box = parse_line(line, fmt=fmt, where=f"{path}:{number}", line_number=number)
        if box is not None:
            boxes.append(box)
    return boxes


def read_dir(directory: str | Path, *, fmt: Format = "auto", suffix: str = ".txt") -> dict[str, list[Box]]:
    """Read every ``*.txt`` file of a folder: image name (file name) -> boxes.

    Parameters
    ----------
    directory : str or Path
    fmt : {"auto", "reference", "ic13", "ic15", "polygon"}, default "auto"
    suffix : str, default ".txt"
        Only files ending with this are read.

    Returns
    -------
    dict of str to list of Box
        Sorted by file name.

    Raises
    ------
    SourceError
        The folder does not exist or cannot be listed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("0 0 4 0 4 2 0 2##::hi\\n")
    >>> {k: [b.text for b in v] for k, v in read_dir(d).items()}
    {'a.txt': ['hi']}
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise SourceError(f"OCR folder {directory} does not exist or is not a folder")
    try:
        files = sorted(p for p in directory.iterdir() if p.name.endswith(suffix) and p.is_file())
    except OSError as exc:
        raise SourceError(f"cannot list OCR folder {directory}: {exc.strerror or exc}") from exc
    return {p.name: read_boxes(p, fmt=fmt) for p in files}
