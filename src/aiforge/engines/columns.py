"""What a snapshot column may be: unique names, and Arrow types that Parquet and every aiforge reader understand.

A driver hands over some types that Parquet cannot store (Arrow's ``month_day_nano_interval``) or that only the
driver understands (PostgreSQL's ``inet`` as its binary wire format). :func:`plan_columns` decides, from a
result's schema and before a row is read, how each column is stored:

==========================================  =====================================================================
interval (PostgreSQL, DuckDB)               ISO 8601 text in PostgreSQL's ``iso_8601`` style: ``P1Y2M3DT4H5M6.5S``
PostgreSQL inet, cidr, macaddr, macaddr8,   PostgreSQL's own text form: ``192.168.0.1/24``, ``08:00:2b:01:02:03``,
bit, varbit, timetz, xml                    ``1010``, ``12:34:56+05:30``
PostgreSQL numeric(p,s), p <= 38           ``decimal128(p, s)``: every digit kept. A ``NaN`` in the data (the only
                                            non-number such a column can hold) makes the dump start again with
                                            the column as float64, and the manifest notes it
PostgreSQL numeric (no precision, or        float64, NaN and +/-Infinity kept; digits beyond the 15th or so are
p > 38, or a scale outside 0..p)            rounded, and the manifest notes it (``numeric(p,s)`` or ``::text`` in
                                            the query keeps them)
PostgreSQL json, jsonb; uuid                text (uuid in its 36-character form)
PostgreSQL money, geometric types, ranges,  refused: :class:`~aiforge.errors.QueryError` names each column, its
tsvector and other types without an Arrow   type and the cast that fixes it
equivalent; anything Parquet cannot store
==========================================  =====================================================================

Names must be unique, ignoring case: DuckDB and Spark, which read snapshots back, fold case (DuckDB renames a
second ``A`` beside ``a`` to ``A_1``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aiforge.errors import QueryError

__all__ = [
    "ColumnPlan",
    "NaNInDecimal",
    "Noted",
    "Unsupported",
    "check_unique_names",
    "interval_to_iso",
    "plan_columns",
    "postgres_rules",
    "refuse",
    "unnamed_oids",
    "uuid_to_text",
]

Convert = Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class Unsupported:
    """A column a snapshot cannot store: its name, its type as the source calls it, why, and the fix."""

    name: str
    kind: str
    reason: str
    hint: str


@dataclass(frozen=True)
class Noted:
    """A conversion with a note for the manifest: how a column is stored when that is not what its source type
    says (a PostgreSQL ``numeric`` without a precision stored as float64, for one)."""

    convert: Convert
    note: str


class NaNInDecimal(Exception):
    """A ``NaN`` met in a column planned as a decimal, which cannot hold it; the dump starts again with the column as
    float64 (see :func:`postgres_rules`)."""

    def __init__(self, column: str) -> None:
        super().__init__(column)
        self.column = column


@dataclass
class ColumnPlan:
    """How a result's columns are stored: the snapshot's schema, the conversion of each batch, and a note per
    column whose storage the manifest should explain."""

    schema: pa.Schema
    converters: dict[int, Convert] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with its columns converted to :attr:`schema`."""
        if not self.converters:
            return batch
        columns = [
            self.converters[i](column) if i in self.converters else column for i, column in enumerate(batch.columns)
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def check_unique_names(names: Sequence[str], query: str) -> None:
    """Refuse a result with two columns of the same name (ignoring case).

    Raises
    ------
    QueryError
        Naming each group of clashing names with their positions (1-based), and how to alias them.

    Examples
    --------
    >>> check_unique_names(["id", "name"], "SELECT id, name FROM t")
    >>> check_unique_names(["a", "a"], "SELECT 1 AS a, 2 AS a")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiforge.errors.QueryError: the query's result has duplicate column names: 'a' (columns 1, 2). A snapshot ...
    """
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(name.casefold(), []).append(index)
    clashes = [positions for positions in groups.values() if len(positions) > 1]
    if not clashes:
        return
    parts = []
    for positions in clashes:
        spelled = ", ".join(repr(n) for n in dict.fromkeys(names[i] for i in positions))
        parts.append(f"{spelled} (columns {', '.join(str(i + 1) for i in positions)})")
    first = names[clashes[0][0]]
    raise QueryError(
        f"the query's result has duplicate column names: {'; '.join(parts)}. A snapshot needs a different name "
        "for each column (names that differ only in case count as the same): give them aliases, for example "
        f"SELECT ... AS {first}_1, ... AS {first}_2",
        query,
    )


def refuse(columns: Sequence[Unsupported], query: str) -> QueryError:
    """One error naming every column a snapshot cannot store, its type, and the cast that fixes it."""
    if len(columns) == 1:
        c = columns[0]
        message = (
            f"cannot store column {c.name!r}: it has {c.kind}, which {c.reason}; convert it in the query, "
            f"for example {c.hint}"
        )
    else:
        each = "; ".join(f"{c.name!r} has {c.kind}, which {c.reason} (convert it with {c.hint})" for c in columns)
        message = f"cannot store {len(columns)} columns: {each}; convert them in the query"
    return QueryError(message, query)


def plan_columns(
    schema: pa.Schema,
    query: str,
    *,
    hint: Callable[[str], str] = lambda name: f"CAST({name} AS VARCHAR)",
    extra: Callable[[pa.Field], Convert | Noted | Unsupported | None] | None = None,
) -> ColumnPlan:
    """Decide how each column of ``schema`` is stored (see the module docstring), before any row is read.

    Parameters
    ----------
    schema : pyarrow.Schema
        The result's schema as the driver gives it.
    query : str
        For the error messages.
    hint : callable, default ``CAST(name AS VARCHAR)``
        The cast to suggest, in the source's SQL dialect, for a type Parquet cannot store.
    extra : callable, optional
        A source's own rules, asked first for each field: a conversion (or a :class:`Noted` one), an
        :class:`Unsupported`, or None.

    Raises
    ------
    QueryError
        Duplicate names, or columns that cannot be stored (all of them named in one message).
    """
    check_unique_names(schema.names, query)
    fields, converters, refused = [], {}, []
    notes: dict[str, str] = {}
    for index, f in enumerate(schema):
        rule = extra(f) if extra is not None else None
        if rule is None:
            rule = _arrow_rule(f, hint)
        if isinstance(rule, Unsupported):
            refused.append(rule)
            fields.append(f)
            continue
        if isinstance(rule, Noted):
            notes[f.name] = rule.note
            rule = rule.convert
        if rule is not None:
            converters[index] = rule
            f = f.with_type(rule(pa.array([], f.type)).type)
        fields.append(f)
    if refused:
        raise refuse(refused, query)
    return ColumnPlan(pa.schema(fields, metadata=schema.metadata), converters, notes)


def _arrow_rule(f: pa.Field, hint: Callable[[str], str]) -> Convert | Noted | Unsupported | None:
    kind = f.type
    if pa.types.is_interval(kind):
        return interval_to_iso
    if isinstance(kind, pa.BaseExtensionType):
        if getattr(kind, "extension_name", "") == "arrow.uuid":
            return uuid_to_text
        if getattr(kind, "extension_name", "") == "arrow.opaque":
            vendor = getattr(kind, "vendor_name", "")
            return Unsupported(f.name, f"{vendor} type {kind.type_name}", "has no Arrow equivalent", hint(f.name))
        return _storage
    try:  # Parquet's own verdict: a writer converts the schema when it is made
        pq.ParquetWriter(pa.BufferOutputStream(), pa.schema([f.with_name("x")])).close()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
        return Unsupported(f.name, f"Arrow type {kind}", "Parquet cannot store", hint(f.name))
    return None


def _storage(array: pa.Array) -> pa.Array:
    return array.storage if isinstance(array, pa.ExtensionArray) else array


# -- intervals -----------------------------------------------------------------------------------------------

_NS_PER_S, _NS_PER_MIN, _NS_PER_H = 1_000_000_000, 60_000_000_000, 3_600_000_000_000
_MDN = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])


def interval_to_iso(array: pa.Array) -> pa.Array:
    """Arrow ``month_day_nano_interval`` values as ISO 8601 durations in PostgreSQL's ``iso_8601`` style.

    Each field keeps its own sign, as PostgreSQL prints them (``P-1Y-2M3DT-4H-5M-6.5S``); fields that are zero are
    left out, and a zero interval is ``PT0S``. Months stay months and days stay days: an interval has no fixed
    length until it is added to a date, so it is not turned into seconds. Vectorised, one pass per field.

    Examples
    --------
    >>> values = [pa.MonthDayNano([14, 3, 14_706_789_000_000]), None, pa.MonthDayNano([0, 0, 0])]
    >>> interval_to_iso(pa.array(values, pa.month_day_nano_interval())).to_pylist()
    ['P1Y2M3DT4H5M6.789S', None, 'PT0S']
    """
    n = len(array)
    if n == 0:
        return pa.array([], pa.string())
    raw = np.frombuffer(array.buffers()[1], dtype=_MDN, count=array.offset + n)[array.offset :]
    months, days, nanos = raw["months"].astype(np.int64), raw["days"].astype(np.int64), raw["nanos"]
    years, months = _split(months, 12)
    hours, nanos = _split(nanos, _NS_PER_H)
    minutes, nanos = _split(nanos, _NS_PER_MIN)
    date = _join(_part(years, "Y"), _part(months, "M"), _part(days, "D"))
    time = _join(_part(hours, "H"), _part(minutes, "M"), _seconds(nanos))
    has_time = pc.not_equal(pc.utf8_length(time), 0)
    text = _join(pa.array(np.full(n, "P")), date, pc.if_else(has_time, _join(pa.array(np.full(n, "T")), time), ""))
    text = pc.if_else(pc.equal(text, "P"), "PT0S", text)
    return pc.if_else(array.is_null(), pa.scalar(None, pa.string()), text)


def _split(values: np.ndarray, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole units and the rest, both with the sign of ``values`` (truncating toward zero, as PostgreSQL does)."""
    whole = np.sign(values) * (np.abs(values) // unit)
    return whole, values - whole * unit


def _part(values: np.ndarray, unit: str) -> pa.Array:
    text = pc.binary_join_element_wise(pc.cast(pa.array(values), pa.string()), unit, "")
    return pc.if_else(pa.array(values == 0), "", text)


def _seconds(nanos: np.ndarray) -> pa.Array:
    whole, frac = np.abs(nanos) // _NS_PER_S, np.abs(nanos) % _NS_PER_S
    digits = pc.utf8_rtrim(pc.utf8_lpad(pc.cast(pa.array(frac), pa.string()), 9, "0"), "0")
    fraction = pc.if_else(pa.array(frac == 0), "", pc.binary_join_element_wise(".", digits, ""))
    sign = pc.if_else(pa.array(nanos < 0), "-", "")
    text = _join(sign, pc.cast(pa.array(whole), pa.string()), fraction, pa.array(np.full(len(nanos), "S")))
    return pc.if_else(pa.array(nanos == 0), "", text)


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


# -- binary forms that only the driver understands -----------------------------------------------------------


def uuid_to_text(array: pa.Array) -> pa.Array:
    """``arrow.uuid`` (16 bytes) as the 36-character text form, vectorised.

    Examples
    --------
    >>> import uuid
    >>> u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    >>> uuid_to_text(pa.array([u.bytes, None], pa.binary(16))).to_pylist()
    ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', None]
    """
    storage = _storage(array)
    n = len(storage)
    raw = np.frombuffer(storage.buffers()[1], np.uint8, count=(storage.offset + n) * 16)[storage.offset * 16 :]
    hexed = np.frombuffer(b"0123456789abcdef", np.uint8)[np.stack([raw >> 4, raw & 15], axis=1).reshape(n, 32)]
    dash = np.full((n, 1), ord("-"), np.uint8)
    chars = np.hstack([hexed[:, :8], dash, hexed[:, 8:12], dash, hexed[:, 12:16], dash, hexed[:, 16:20], dash,
                       hexed[:, 20:]])  # fmt: skip
    offsets = pa.py_buffer(np.arange(0, 36 * (n + 1), 36, dtype=np.int32).tobytes())
    text = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(chars.tobytes())])
    return pc.if_else(storage.is_null(), pa.scalar(None, pa.string()), text)


def per_value(decode: Callable[[bytes], str]) -> Convert:
    """A conversion that decodes each non-null binary value with ``decode`` (for types rare in bulk)."""

    def convert(array: pa.Array) -> pa.Array:
        return pa.array([None if v is None else decode(v) for v in _storage(array).to_pylist()], pa.string())

    return convert


def inet_text(value: bytes) -> str:
    """PostgreSQL's binary ``inet``/``cidr`` as its text: family, mask bits, is-cidr, length, address.

    Examples
    --------
    >>> inet_text(bytes([2, 24, 0, 4, 192, 168, 0, 1])), inet_text(bytes([2, 32, 0, 4, 10, 0, 0, 1]))
    ('192.168.0.1/24', '10.0.0.1')
    """
    bits, is_cidr, size = value[1], value[2], value[3]
    address = ipaddress.ip_address(value[4 : 4 + size])
    return str(address) if bits == size * 8 and not is_cidr else f"{address}/{bits}"


def mac_text(value: bytes) -> str:
    """PostgreSQL's binary ``macaddr``/``macaddr8`` as ``08:00:2b:01:02:03``."""
    return ":".join(f"{b:02x}" for b in value)


def bits_text(value: bytes) -> str:
    """PostgreSQL's binary ``bit``/``varbit`` (a 4-byte length in bits, then the bytes) as ``1010``."""
    length = int.from_bytes(value[:4], "big")
    return "".join(f"{b:08b}" for b in value[4:])[:length]


def timetz_text(value: bytes) -> str:
    """PostgreSQL's binary ``timetz`` (microseconds, then the zone in seconds west of UTC) as ``12:34:56+05:30``."""
    micros, west = int.from_bytes(value[:8], "big", signed=True), int.from_bytes(value[8:12], "big", signed=True)
    seconds, micros = divmod(micros, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if micros:
        text += f".{micros:06d}".rstrip("0")
    east = -west
    sign, east = ("+" if east >= 0 else "-"), abs(east)
    zone = f"{sign}{east // 3600:02d}"
    if east % 3600:
        zone += f":{east // 60 % 60:02d}"
    if east % 60:
        zone += f":{east % 60:02d}"
    return text + zone


def utf8_text(array: pa.Array) -> pa.Array:
    """Binary that holds UTF-8 text (PostgreSQL's ``xml``) as a string column."""
    return _storage(array).cast(pa.string())


#: PostgreSQL types the ADBC driver hands over as opaque binary, and how each becomes text
POSTGRES_TEXT: dict[str, Convert] = {
    "inet": per_value(inet_text),
    "cidr": per_value(inet_text),
    "macaddr": per_value(mac_text),
    "macaddr8": per_value(mac_text),
    "bit": per_value(bits_text),
    "varbit": per_value(bits_text),
    "timetz": per_value(timetz_text),
    "xml": utf8_text,
}

#: the largest precision of Arrow's decimal128, which Parquet, DuckDB and Spark all read
MAX_DECIMAL_DIGITS = 38


def numeric_precision(typmod: int) -> tuple[int, int] | None:
    """``(precision, scale)`` of a PostgreSQL ``numeric`` type modifier, or None for a bare ``numeric``.

    The modifier is ``((precision << 16) | scale) + 4``; since PostgreSQL 15 the scale is an 11-bit signed number
    (``numeric(2,-3)`` rounds to thousands).

    Examples
    --------
    >>> numeric_precision(655366), numeric_precision(-1)
    ((10, 2), None)
    """
    if typmod < 4:
        return None
    bits = typmod - 4
    return (bits >> 16) & 0xFFFF, ((bits & 0x7FF) ^ 1024) - 1024


def numeric_rule(name: str, typmod: int) -> Noted | Convert:
    """How a PostgreSQL ``numeric`` column (text from the driver: ``-5.00``, ``nan``, ``inf``) is stored.

    ``numeric(p,s)`` with ``0 <= s <= p <= 38`` becomes ``decimal128(p, s)``, every digit kept; such a column can
    hold ``NaN`` (not infinity), and a NaN raises :class:`NaNInDecimal`. Anything else (no declared precision: a
    bare ``numeric`` column, ``sum()``, arithmetic) becomes float64, with a note: the type of a column never depends
    on its values, so every version of a snapshot has the same schema.
    """
    declared = numeric_precision(typmod)
    if declared is not None and 0 <= declared[1] <= declared[0] <= MAX_DECIMAL_DIGITS:
        target = pa.decimal128(*declared)

        def to_decimal(array: pa.Array) -> pa.Array:
            text = _storage(array)
            if pc.any(pc.equal(text, "nan")).as_py():
                raise NaNInDecimal(name)
            return text.cast(target)

        return to_decimal
    kind = "numeric" if declared is None else f"numeric({declared[0]},{declared[1]})"
    why = (
        "it has no declared precision"
        if declared is None
        else f"a decimal holds at most {MAX_DECIMAL_DIGITS} digits and a scale from 0 to the precision"
    )
    return float_numeric(
        f"PostgreSQL {kind} stored as float64 (double), since {why}: NaN and Infinity are kept, digits beyond the "
        f"15th are rounded; cast it to numeric(p,s) with p <= {MAX_DECIMAL_DIGITS} in the query to keep every "
        f"digit, for example {name}::numeric(18,2)"
    )


def float_numeric(note: str) -> Noted:
    """PostgreSQL ``numeric`` text as float64 (``nan``, ``inf`` and ``-inf`` included), with ``note``."""
    return Noted(lambda array: _storage(array).cast(pa.float64()), note)


def unnamed_oids(schema: pa.Schema) -> list[int]:
    """The type oids the PostgreSQL driver could not name (ranges, for one): ``unnamed<oid:3904>``."""
    found = (re.fullmatch(r"unnamed<oid:(\d+)>", getattr(f.type, "type_name", "")) for f in schema)
    return [int(m[1]) for m in found if m]


def postgres_rules(
    names: dict[int, str] | None = None, as_float: frozenset[str] = frozenset()
) -> Callable[[pa.Field], Convert | Noted | Unsupported | None]:
    """PostgreSQL's own rules for :func:`plan_columns`; ``names`` maps the oids of :func:`unnamed_oids` to names,
    and ``as_float`` names the ``numeric(p,s)`` columns stored as float64 because they hold a NaN."""

    def rule(f: pa.Field) -> Convert | Noted | Unsupported | None:
        kind = f.type
        if isinstance(kind, pa.BaseExtensionType) and getattr(kind, "extension_name", "") == "arrow.opaque":
            if kind.type_name == "numeric":
                typmod = int((f.metadata or {}).get(b"POSTGRESQL:typmod", b"-1") or -1)
                if f.name in as_float:
                    precision, scale = numeric_precision(typmod) or (0, 0)
                    return float_numeric(
                        f"PostgreSQL numeric({precision},{scale}) stored as float64 (double), since it holds NaN, "
                        f"which a decimal cannot: digits beyond the 15th are rounded; NULLIF({f.name}, 'NaN') in "
                        "the query keeps it a decimal"
                    )
                return numeric_rule(f.name, typmod)
            convert = POSTGRES_TEXT.get(kind.type_name)
            if convert is not None:
                return convert
            unnamed = re.fullmatch(r"unnamed<oid:(\d+)>", kind.type_name)
            name = (names or {}).get(int(unnamed[1]), kind.type_name) if unnamed else kind.type_name
            return Unsupported(f.name, f"PostgreSQL type {name}", "has no Arrow equivalent", f"{f.name}::text")
        return _money(f)

    return rule


def _money(f: pa.Field) -> Unsupported | None:
    typname = (f.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    if typname == "money":
        return Unsupported(
            f.name,
            "PostgreSQL type money",
            "the driver reads as a count of the currency's smallest unit without its scale",
            f"{f.name}::numeric",
        )
    return None
