"""Exact tests of the BATCH encoders (``batch/_encoders.py``) that kill the mutants surviving the BATCH tests
(issue 11), on hand-worked small cases."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from aiforge.batch import _encoders as enc


def blake64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def test_a_lone_surrogate_hashes_by_its_surrogatepass_bytes() -> None:
    # hash_bucket takes any Python str: a lone surrogate (what a JSON "\ud800" decodes to) hashes to fixed bytes
    # (Arrow strings are valid UTF-8, so only this direct call can meet one)
    key = "\ud800"
    assert key.encode("utf-8", "surrogatepass") == b"\xed\xa0\x80"
    assert enc.hash_bucket(key, 1000) == blake64(b"\xed\xa0\x80") % 1000


def splitmix(i: int, seed: int) -> int:
    """The documented SplitMix64 mix of an integer id, in plain Python integers."""
    mask, golden = (1 << 64) - 1, 0x9E3779B97F4A7C15
    z = (i + seed * golden + golden) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


# found by inverting the mix: its hash is 2**63 exactly, so u = (2**63 >> 11) / 2**53 = 0.5 exactly
HALF = 3453682501520545093


def test_a_share_boundary_goes_to_the_next_split() -> None:
    assert splitmix(HALF, 0) == 1 << 63
    ids = pa.array([HALF], pa.int64())
    # u < train is train: u == train is not
    assert enc.split_codes(ids, train=0.5, valid=0.25, seed=0).tolist() == [1]
    # u < train + valid is valid: u == train + valid is test
    assert enc.split_codes(ids, train=0.25, valid=0.25, seed=0).tolist() == [2]
    assert enc.split_codes(ids, train=0.25, valid=0.5, seed=0).tolist() == [1]


def test_the_hash_cache_never_holds_more_than_its_bound(monkeypatch) -> None:
    monkeypatch.setattr(enc, "_MAX_CACHED", 2)
    monkeypatch.setattr(enc, "_HASHES", {})
    # the third key finds the cache full, so it starts over: sizes 1, 2, 1, 2, 1
    sizes = []
    for key in ("a", "b", "c", "d", "e"):
        assert enc.hash_bucket(key, 1 << 62) == blake64(key.encode()) % (1 << 62)
        sizes.append(len(enc._HASHES))
    assert sizes == [1, 2, 1, 2, 1] and list(enc._HASHES) == ["e"]


def test_tokens_of_calls_the_tokenizer_once_and_checks_its_answer() -> None:
    calls = []

    def tokenizer(texts: list[str]) -> list[list[str]]:
        calls.append(list(texts))
        return [t.split() for t in texts]

    got = enc.tokens_of(pa.array(["B a", None, "c", "B a"]), tokenizer, lowercase=True)
    assert got == [["b", "a"], [], ["c"], ["b", "a"]] and calls == [["B a", "c"]]
    assert enc.tokens_of(pa.array([None], pa.string()), tokenizer, lowercase=False) == [[]] and len(calls) == 1
    # a tokenizer that answers for fewer texts than it was given is an error, never a silent cut
    with pytest.raises(ValueError, match="zip"):
        enc.tokens_of(pa.array(["x", "y"]), lambda texts: [["x"]], lowercase=False)
