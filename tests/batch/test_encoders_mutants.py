"""Exact tests of the BATCH encoders (``batch/_encoders.py``) that kill the mutants surviving the BATCH tests
(issue 11), on hand-worked small cases."""

from __future__ import annotations

import hashlib
import math

import pyarrow as pa
import pytest

from aiforge.batch import _encoders as enc
from aiforge.batch.transform import Transform


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


def test_the_hash_cache_never_holds_more_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_a_null_key_hashes_to_minus_one() -> None:
    got = enc.hashed_indices(pa.array(["a", None, "b", None, "a"]), 5)
    a, b = blake64(b"a") % 5, blake64(b"b") % 5
    assert got.tolist() == [a, -1, b, -1, a]


def test_no_vocabulary_is_unknown_everywhere() -> None:
    assert enc.vocabulary_indices(pa.array(["a", None]), []).tolist() == [-1, -1]
    assert enc.term_counts([["a"], []], [], 0).shape == (2, 0)
    # a category column with no value in the train split: every category is unknown (ordinal -1, one-hot "other")
    t = Transform(
        features=[
            {"categorical": {"column": "c", "encoding": "ordinal"}},
            {"categorical": {"column": "c", "name": "c1"}},
        ]
    ).fit(pa.table({"c": pa.array([None, None], pa.string())}))
    assert t.feature_names_ == ["c", "c1=__other__"]
    assert t.transform(pa.table({"c": ["a", None]})).tolist() == [[-1.0, 1.0], [-1.0, 1.0]]


def test_integer_split_with_a_seed_is_the_documented_mix() -> None:
    # seed * golden + golden: with seed 0 a sign flip of the seed term would not show
    for seed in (1, 3, 12345):
        ids = list(range(-20, 40))
        want = []
        for i in ids:
            u = (splitmix(i & ((1 << 64) - 1), seed) >> 11) / 2**53
            want.append(0 if u < 0.6 else 1 if u < 0.8 else 2)
        assert enc.split_codes(pa.array(ids, pa.int64()), train=0.6, valid=0.2, seed=seed).tolist() == want


def test_each_ids_u_is_exactly_the_documented_one() -> None:
    # u = (hash >> 11) / 2**53 is a float64 exactly; a train share of u puts the id out of train, the next float up
    # puts it in: this pins all 53 bits of u, also the low ones that no share near 0.8 would show
    for seed in (0, 7):
        for i in (0, 1, 2, 41, -5, 2**40 + 3):
            u = (splitmix(i & ((1 << 64) - 1), seed) >> 11) / 2**53
            ids = pa.array([i], pa.int64())
            assert enc.split_codes(ids, train=u, valid=0.0, seed=seed).tolist() == [2], (seed, i)
            assert enc.split_codes(ids, train=math.nextafter(u, 2.0), valid=0.0, seed=seed).tolist() == [0], (seed, i)


def test_each_string_ids_u_is_blake2b_of_seed_colon_id() -> None:
    for seed in (0, 3):
        for key in ("a", "order-17", "서울"):
            u = (blake64(f"{seed}:{key}".encode()) >> 11) / 2**53
            ids = pa.array([key, None])
            assert enc.split_codes(ids, train=u, valid=0.0, seed=seed).tolist() == [2, 2], (seed, key)
            assert enc.split_codes(ids, train=math.nextafter(u, 2.0), valid=0.0, seed=seed).tolist() == [0, 2]
