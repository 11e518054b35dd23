"""Vectorised encoders shared by every engine: the same numpy/Arrow code runs locally and in Spark workers.

Everything here is a pure function of Arrow arrays and fitted state, so a row gets the same features whether it
is transformed in a local batch, in a Spark partition or alone at serving time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "SPLITS",
    "category_keys",
    "hash_bucket",
    "numeric_values",
    "split_codes",
    "tokens_of",
]

SPLITS = ("train", "valid", "test")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def numeric_values(
    column: pa.Array | pa.ChunkedArray | np.ndarray,
    clip: tuple[float, float] | None = None,
    log1p: bool = False,
    fill: float | None = None,
) -> np.ndarray:
    """Float64 values after ``fill`` (of missing, NaN and infinite values), ``clip`` then ``log1p``; missing, NaN
    and infinite results are NaN.

    ``column`` may also be a float64 numpy array with NaN for missing values (one served record skips Arrow).

    Examples
    --------
    >>> numeric_values(pa.array([1, None, 50]), clip=(0, 10)).tolist()
    [1.0, nan, 10.0]
    >>> numeric_values(pa.array([1, None, float("inf")]), fill=4.0).tolist()
    [1.0, 4.0, 4.0]
    """
    if isinstance(column, np.ndarray):
        values = column.astype(np.float64, copy=True)
    else:
        values = pc.cast(_plain(column), pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    if fill is not None:
        values[~np.isfinite(values)] = fill
    if clip is not None:
        np.clip(values, clip[0], clip[1], out=values)
    if log1p:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.log1p(values)
    values[~np.isfinite(values)] = np.nan
    return values


def category_keys(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The string form of each category (Arrow's cast), nulls kept.

    Examples
    --------
    >>> category_keys(pa.array([1, None, 3])).to_pylist()
    ['1', None, '3']
    """
    array = _plain(column)
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    return array


_HASHES: dict[str, int] = {}
_MAX_CACHED = 2_000_000


def _hash64(key: str) -> int:
    value = _HASHES.get(key)
    if value is None:
        if len(_HASHES) >= _MAX_CACHED:  # bounded memory: start over rather than grow without limit
            _HASHES.clear()
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = _HASHES[key] = int.from_bytes(digest, "little")
    return value


def hash_bucket(key: str, buckets: int) -> int:
    """A stable bucket in ``[0, buckets)`` for ``key``: the first 8 bytes of BLAKE2b, modulo ``buckets``.

    Hashes are cached by key in the process (up to 2M keys), since batches repeat the same categories.

    Examples
    --------
    >>> hash_bucket("red", 8) == hash_bucket("red", 8)
    True
    """
    return _hash64(key) % buckets


def hashed_indices(keys: pa.Array, buckets: int) -> np.ndarray:
    """Bucket of each key (``-1`` for nulls), hashing each distinct key once."""
    encoded = pc.dictionary_encode(keys)
    uniques = encoded.dictionary.to_pylist()
    hashes = np.fromiter((_hash64(k) for k in uniques), dtype=np.uint64, count=len(uniques))
    table = np.append((hashes % np.uint64(buckets)).astype(np.int64), -1)
    codes = encoded.indices.fill_null(len(uniques)).to_numpy(zero_copy_only=False)
    return table[codes.astype(np.int64)]


def vocabulary_indices(keys: pa.Array, vocabulary: Sequence[str]) -> np.ndarray:
    """Position of each key in ``vocabulary``; ``-1`` when absent or null."""
    if not vocabulary:
        return np.full(len(keys), -1, dtype=np.int64)
    found = pc.index_in(keys, value_set=pa.array(list(vocabulary), pa.string()))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def tokens_of(
    column: pa.Array | pa.ChunkedArray, tokenizer: Callable[[list[str]], list[list[str]]], lowercase: bool
) -> list[list[str]]:
    """Tokens of each text (``[]`` for nulls), through ``tokenizer`` called once with the distinct texts."""
    texts = category_keys(column).to_pylist()
    distinct = list(dict.fromkeys(t for t in texts if t is not None))
    tokens = dict(zip(distinct, tokenizer(distinct), strict=True)) if distinct else {}
    out = []
    for text in texts:
        found = tokens.get(text, []) if text is not None else []
        out.append([t.lower() for t in found] if lowercase else list(found))
    return out


def flatten(tokens: list[list[str]]) -> tuple[np.ndarray, pa.Array]:
    """Row index of every token and the tokens as one Arrow string array."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    rows = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
    flat = pa.array([tok for doc in tokens for tok in doc], pa.string())
    return rows, flat


def term_counts(tokens: list[list[str]], vocabulary: Sequence[str] | None, width: int) -> np.ndarray:
    """Token counts per row: over ``vocabulary`` positions, or over hashed buckets when it is None."""
    out = np.zeros((len(tokens), width), dtype=np.float64)
    rows, flat = flatten(tokens)
    if len(flat) == 0:
        return out
    columns = hashed_indices(flat, width) if vocabulary is None else vocabulary_indices(flat, vocabulary)
    keep = columns >= 0
    np.add.at(out, (rows[keep], columns[keep]), 1.0)
    return out


def split_codes(ids: pa.Array | pa.ChunkedArray, *, train: float, valid: float, seed: int) -> np.ndarray:
    """0 (train), 1 (valid) or 2 (test) for each id, from a fixed hash of the id; the same on every engine.

    Integer ids are mixed with SplitMix64 (``id + seed * 0x9E3779B97F4A7C15``); other ids use the first 8
    bytes of BLAKE2b of ``"{seed}:{id}"`` (the id's string form). The top 53 bits of the hash give a uniform
    ``u`` in [0, 1): train if ``u < train``, valid if ``u < train + valid``, else test. Null ids go to test.

    Examples
    --------
    >>> split_codes(pa.array([1, 2, 3]), train=1.0, valid=0.0, seed=0).tolist()
    [0, 0, 0]
    """
    array = _plain(ids)
    valid_mask = ~np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(array.type):
        x = pc.cast(array, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
        with np.errstate(over="ignore"):
            z = x + np.uint64(seed) * _GOLDEN + _GOLDEN
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
    else:
        encoded = pc.dictionary_encode(category_keys(array))
        uniques = encoded.dictionary.to_pylist()
        hashes = np.array(
            [
                int.from_bytes(
                    hashlib.blake2b(f"{seed}:{u}".encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                    "little",
                )
                for u in uniques
            ]
            + [0],
            dtype=np.uint64,
        )
        z = hashes[encoded.indices.fill_null(len(uniques)).to_numpy(zero_copy_only=False).astype(np.int64)]
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    codes = np.where(u < train, 0, np.where(u < train + valid, 1, 2)).astype(np.int8)
    codes[~valid_mask] = 2
    return codes


def python_value(value: Any) -> Any:
    """A numpy scalar as a plain Python value (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value
