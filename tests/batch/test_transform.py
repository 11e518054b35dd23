"""The feature transform: exact values on hand-computed cases, the fit/apply contract, the saved artifact."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from aiforge.batch._encoders import split_codes
from aiforge.batch.transform import Transform
from aiforge.errors import ColumnNotFound, InvalidInput, NotFittedError


def fit(feature: dict[str, Any], **columns: list[Any]) -> Transform:
    return Transform(features=[feature]).fit(pa.table(columns))


def out(transform: Transform, **columns: list[Any]) -> np.ndarray:
    return transform.transform(pa.table(columns))


def test_standardize_uses_population_std_and_imputes_the_mean() -> None:
    t = fit({"numeric": {"column": "x", "scale": "standardize"}}, x=[1.0, 2.0, 3.0, 4.0, None])
    assert t.state_[0]["mean"] == 2.5
    assert t.state_[0]["std"] == pytest.approx(math.sqrt(1.25), abs=1e-15)
    got = out(t, x=[5.0, None, float("nan"), float("inf")])
    np.testing.assert_allclose(got[:, 0], [2.5 / math.sqrt(1.25), 0, 0, 0], rtol=1e-6)
    assert got.dtype == np.float32 and got.shape == (4, 1)


def test_minmax_log1p_clip() -> None:
    t = fit({"numeric": {"column": "x", "scale": "minmax"}}, x=[0, 4])
    assert out(t, x=[1, 6, -2])[:, 0].tolist() == [0.25, 1.5, -0.5]
    t = fit({"numeric": {"column": "x", "clip": [0, 10], "log1p": True}}, x=[-5.0, 100.0, 3.0])
    np.testing.assert_allclose(out(t, x=[-5.0, 100.0, 3.0])[:, 0], [0.0, math.log(11), math.log(4)], rtol=1e-6)
    t = fit({"numeric": {"column": "x", "clip": [0, 10], "log1p": True, "scale": "minmax"}}, x=[-5.0, 100.0])
    assert out(t, x=[-1.0, 50.0])[:, 0].tolist() == [0.0, 1.0]


def test_constant_column_scales_by_one() -> None:
    t = fit({"numeric": {"column": "x", "scale": "standardize"}}, x=[3.0, 3.0])
    assert t.state_[0]["std"] == 1.0 and out(t, x=[4.0])[0, 0] == 1.0
    t = fit({"numeric": {"column": "x", "scale": "minmax"}}, x=[3.0, 3.0])
    assert out(t, x=[5.0])[0, 0] == 2.0


def test_bucketize_quantile_edges_and_fixed_edges() -> None:
    t = fit({"numeric": {"column": "x", "bucketize": {"bins": 4}}}, x=[1, 2, 3, 4, 5, 6, 7, 8])
    assert t.state_[0]["edges"] == [2.75, 4.5, 6.25]  # linear interpolation at (n-1) * p
    assert t.feature_names_ == ["x#b0", "x#b1", "x#b2", "x#b3"]
    assert out(t, x=[1, 4.5, 100, 2.75]).tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    t = fit({"numeric": {"column": "x", "bucketize": {"edges": [0, 10]}}}, x=[5])
    assert out(t, x=[-1, 0, 10]).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_onehot_top_k_with_other_and_ties_by_value() -> None:
    t = fit({"categorical": {"column": "c", "top_k": 2}}, c=["d", "d", "c", "c", "a", None])
    assert t.state_[0]["vocabulary"] == ["c", "d"]  # count 2 each; ties broken by value
    assert t.feature_names_ == ["c=c", "c=d", "c=__other__"]
    assert out(t, c=["d", "a", None, "zz"]).tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]]


def test_onehot_default_top_k_is_ten_and_numbers_are_keys() -> None:
    t = fit({"categorical": {"column": "c"}}, c=[*list(range(12)), 5])
    assert t.state_[0]["vocabulary"] == ["5", "0", "1", "10", "11", "2", "3", "4", "6", "7"]
    assert out(t, c=[5])[0, :2].tolist() == [1, 0]


def test_ordinal_index_by_frequency_unknown_is_minus_one() -> None:
    t = fit({"categorical": {"column": "c", "encoding": "ordinal"}}, c=["b", "a", "a", "c", "a", "b"])
    assert t.state_[0]["vocabulary"] == ["a", "b", "c"]
    assert out(t, c=["a", "b", "c", "z", None])[:, 0].tolist() == [0, 1, 2, -1, -1]


def blake(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % buckets


def test_feature_hashing_of_categories() -> None:
    t = fit({"categorical": {"column": "c", "encoding": "hash", "buckets": 8}}, c=["x"])
    assert t.feature_names_ == [f"c#h{j}" for j in range(8)]
    got = out(t, c=["red", "blue", None])
    assert got[0].tolist() == [float(j == blake("red", 8)) for j in range(8)]
    assert got[1].tolist() == [float(j == blake("blue", 8)) for j in range(8)]
    assert got[2].tolist() == [0.0] * 8


def test_tfidf_smooth_idf_l2_normalised() -> None:
    t = fit({"text": {"column": "t"}}, t=["a b", "A c", "a a b", None])
    # 4 docs; df a=3, b=2, c=1; idf = ln((1 + n) / (1 + df)) + 1
    assert t.state_[0]["vocabulary"] == ["a", "b", "c"]
    np.testing.assert_allclose(t.state_[0]["idf"], [math.log(5 / 4) + 1, math.log(5 / 3) + 1, math.log(5 / 2) + 1])
    row = np.array([2 * (math.log(5 / 4) + 1), math.log(5 / 3) + 1, 0.0])
    np.testing.assert_allclose(out(t, t=["a a b"])[0], row / np.linalg.norm(row), rtol=1e-6)
    assert out(t, t=["zzz", None]).tolist() == [[0, 0, 0], [0, 0, 0]]


def test_tfidf_max_features_and_min_df() -> None:
    t = fit({"text": {"column": "t", "max_features": 2, "min_df": 2}}, t=["a b c", "a b", "a d", "b"])
    assert t.state_[0]["vocabulary"] == ["a", "b"]
    assert t.feature_names_ == ["t:a", "t:b"]


def test_text_hashing_counts_tokens() -> None:
    t = fit({"text": {"column": "t", "encoding": "hash", "buckets": 4, "lowercase": False}}, t=["x"])
    expected = np.zeros(4)
    for token in ["b", "b", "A"]:
        expected[blake(token, 4)] += 1
    assert out(t, t=["b b, A!"])[0].tolist() == expected.tolist()


def test_korean_text_goes_through_kiwi() -> None:
    t = fit({"text": {"column": "t", "encoding": "tfidf"}}, t=["학교에 간다", "hello"])
    assert "학교" in t.state_[0]["vocabulary"]


def test_contract_not_fitted_and_params_only_in_init() -> None:
    t = Transform(features=[{"numeric": {"column": "x"}}])
    assert vars(t)["features"] == [{"numeric": {"column": "x"}}] and not hasattr(t, "state_")
    with pytest.raises(NotFittedError, match=r"^this Transform is not fitted yet; call fit"):
        t.transform(pa.table({"x": [1.0]}))
    with pytest.raises(NotFittedError):
        t.transform_record({"x": 1.0})
    assert t.fit(pa.table({"x": [1.0]})) is t


def test_fit_errors() -> None:
    with pytest.raises(ColumnNotFound, match=r"^column 'x' not found; available columns: y$"):
        Transform(features=[{"numeric": {"column": "x"}}]).fit(pa.table({"y": [1]}))
    with pytest.raises(InvalidInput, match=r"^feature 'x': column 'x' has no finite value in the train split"):
        Transform(features=[{"numeric": {"column": "x"}}]).fit(
            pa.table(
                {"x": [None, float("nan")]},
            )
        )


FEATURES = [
    {"numeric": {"column": "x", "scale": "standardize"}},
    {"numeric": {"column": "x", "name": "xb", "bucketize": {"bins": 3}}},
    {"categorical": {"column": "c", "top_k": 2}},
    {"categorical": {"column": "c", "name": "co", "encoding": "ordinal"}},
    {"categorical": {"column": "n", "encoding": "hash", "buckets": 4}},
    {"text": {"column": "t"}},
]
TABLE = pa.table(
    {
        "x": [1.5, None, 3.0, -2.0, 8.0],
        "c": ["a", "b", "a", None, "c"],
        "n": [1, 2, 3, 4, None],
        "t": ["the cat", "a dog", None, "cat cat dog", "bird"],
    }
)


def test_transform_record_equals_the_batch_rows() -> None:
    t = Transform(features=FEATURES).fit(TABLE)
    rows = t.transform(TABLE)
    for i, record in enumerate(TABLE.to_pylist()):
        got = t.transform_record(json.loads(json.dumps(record)))
        assert got.dtype == np.float32 and np.array_equal(got, rows[i])


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = Transform(features=FEATURES).fit(TABLE)
    path = t.save(tmp_path)
    assert path == tmp_path / "transform.json"
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["n_train"]) == ("aiforge.transform", 1, 5)
    assert data["input_types"] == {"x": "double", "c": "string", "n": "int64", "t": "string"}
    loaded = Transform.load(path)
    assert loaded.feature_names_ == t.feature_names_
    assert np.array_equal(loaded.transform(TABLE), t.transform(TABLE))
    assert np.array_equal(
        Transform.load(tmp_path).transform_record({"x": 2, "c": "a", "n": 1, "t": "cat"}),
        t.transform_record({"x": 2, "c": "a", "n": 1, "t": "cat"}),
    )


def test_load_and_record_errors(tmp_path: Path) -> None:
    t = Transform(features=FEATURES).fit(TABLE)
    with pytest.raises(ColumnNotFound, match=r"^record has no key 'n'; the transform reads: x, c, n, t$"):
        t.transform_record({"x": 1.0, "c": "a", "t": "hi"})
    with pytest.raises(InvalidInput, match=r"^record value 'many' for 'n' is not a int64"):
        t.transform_record({"x": 1.0, "c": "a", "n": "many", "t": "hi"})
    data = t.to_dict() | {"version": 99}
    (tmp_path / "new.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match=r"has version 99; this aiforge reads versions up to 2: upgrade"):
        Transform.load(tmp_path / "new.json")
    with pytest.raises(InvalidInput, match=r"^cannot read transform artifact"):
        Transform.load(tmp_path / "missing.json")


def splitmix_split(i: int, train: float, valid: float, seed: int) -> int:
    """The documented split of an integer id, in plain Python integers."""
    mask = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15
    z = (i + seed * golden + golden) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    u = (z >> 11) / 2**53
    return 0 if u < train else 1 if u < train + valid else 2


def test_split_codes_are_a_fixed_function_of_the_id() -> None:
    ids = pa.array(range(20_000))
    codes = split_codes(ids, train=0.8, valid=0.1, seed=0)
    assert np.array_equal(codes, split_codes(pa.array(range(20_000), pa.int32()), train=0.8, valid=0.1, seed=0))
    shares = np.bincount(codes, minlength=3) / len(codes)
    np.testing.assert_allclose(shares, [0.8, 0.1, 0.1], atol=0.01)
    assert not np.array_equal(codes, split_codes(ids, train=0.8, valid=0.1, seed=1))
    assert split_codes(ids.slice(0, 50), train=0.8, valid=0.1, seed=0).tolist() == [
        splitmix_split(i, 0.8, 0.1, 0) for i in range(50)
    ]
    text = split_codes(pa.array(["a", "b", None]), train=0.5, valid=0.25, seed=3)
    h = int.from_bytes(hashlib.blake2b(b"3:a", digest_size=8).digest(), "little")
    assert text[0] == (0 if (h >> 11) / 2**53 < 0.5 else 1 if (h >> 11) / 2**53 < 0.75 else 2)
    assert text[2] == 2


def test_rank_interpolation_matches_linear_quantiles() -> None:
    from aiforge.batch._plan import interpolate, ranks_needed

    values = sorted(np.random.default_rng(3).normal(size=101).tolist())
    probabilities = [0.25, 0.5, 0.75, 0.9]
    ranks = ranks_needed(probabilities, len(values))
    assert ranks == {25, 50, 75, 90}
    got = interpolate({r: values[r] for r in ranks}, probabilities, len(values))
    np.testing.assert_allclose(got, np.quantile(values, probabilities), rtol=1e-15)
    assert interpolate({0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}, [0.5], 4) == [2.5]


def test_served_numbers_are_checked_like_batch_rows() -> None:
    # "k" is an integer column only numeric features read: a served record skips Arrow for it, with the same result
    table = pa.table({"k": [1, None, 7, 3], "f": [0.5, 2.0, None, 1.0]})
    t = Transform(features=[{"numeric": {"column": "k", "scale": "minmax"}},
                            {"numeric": {"column": "f", "log1p": True, "scale": "standardize"}}]).fit(table)
    rows = t.transform(table)
    for i, record in enumerate(table.to_pylist()):
        assert np.array_equal(t.transform_record(record), rows[i])
    assert np.array_equal(t.transform_record({"k": 7.0, "f": 1}), t.transform(pa.table({"k": [7], "f": [1.0]}))[0])
    # a float for an integer column goes through Arrow, as before this fast path (Arrow truncates it)
    assert np.array_equal(t.transform_record({"k": 2.5, "f": 1}), t.transform(pa.table({"k": [2], "f": [1.0]}))[0])
    with pytest.raises(InvalidInput, match=r"^record value 'seven' for 'k' is not a int64"):
        t.transform_record({"k": "seven", "f": 1.0})
    with pytest.raises(InvalidInput, match=r"^record value 18446744073709551616 for 'k' is not a int64"):
        t.transform_record({"k": 2**64, "f": 1.0})


def test_a_new_fit_recomputes_which_columns_skip_arrow() -> None:
    t = Transform(features=[{"numeric": {"column": "k"}}]).fit(pa.table({"k": [1, 2]}))
    assert t._numeric_only_columns() == frozenset({"k"})
    t.fit(pa.table({"k": [True, False]}))  # same spec, the column is now boolean: served values go through Arrow
    assert t._numeric_only_columns() == frozenset()
    assert np.array_equal(t.transform_record({"k": True}), t.transform(pa.table({"k": [True]}))[0])
    assert t.transform_record({"k": True}).tolist() == [1.0]


# transform.json as aiforge 0.1.0 wrote it for Transform(features=FEATURES).fit(TABLE) (compacted)
RELEASED_ARTIFACT = (
    '{"format": "aiforge.transform", "version": 1, "aiforge_version": "0.1.0", '
    '"features": [{"numeric": {"column": "x", "log1p": false, "scale": "standardize"}}, '
    '{"numeric": {"column": "x", "name": "xb", "log1p": false, "scale": "none", '
    '"bucketize": {"bins": 3}}}, {"categorical": {"column": "c", "encoding": "onehot", "top_k": 2, '
    '"buckets": 32}}, {"categorical": {"column": "c", "name": "co", "encoding": "ordinal", '
    '"buckets": 32}}, {"categorical": {"column": "n", "encoding": "hash", "buckets": 4}}, '
    '{"text": {"column": "t", "encoding": "tfidf", "buckets": 256, "max_features": 1000, "min_df": 1, '
    '"lowercase": true}}], "nlp": null, "input_types": {"x": "double", "c": "string", "n": "int64", '
    '"t": "string"}, "feature_names": ["x", "xb#b0", "xb#b1", "xb#b2", "c=a", "c=b", "c=__other__", "co", '
    '"n#h0", "n#h1", "n#h2", "n#h3", "t:cat", "t:dog", "t:a", "t:bird", "t:the"], "n_train": 5, '
    '"state": [{"mean": 2.625, "std": 3.5947009611371015, "min": -2.0, "max": 8.0}, {"mean": 2.625, '
    '"std": 3.5947009611371015, "min": -2.0, "max": 8.0, "edges": [1.5, 3.0]}, {"vocabulary": ["a", "b"]}, '
    '{"vocabulary": ["a", "b", "c"]}, {}, {"vocabulary": ["cat", "dog", "a", "bird", "the"], '
    '"idf": [1.6931471805599454, 1.6931471805599454, 2.09861228866811, 2.09861228866811, '
    '2.09861228866811]}]}'
)
# what that release's transform gave for TABLE (float32 values, printed exactly)
RELEASED_ROWS = [
    [-0.3129606544971466, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.627913773059845, 0.0, 0.0,
     0.0, 0.7782829403877258],
    [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.627913773059845, 0.7782829403877258, 0.0,
     0.0],
    [0.1043202206492424, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [-1.2866160869598389, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.8944271802902222,
     0.4472135901451111, 0.0, 0.0, 0.0],
    [1.4952565431594849, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
]


def test_an_artifact_from_the_released_format_loads_and_transforms_identically(tmp_path: Path) -> None:
    (tmp_path / "transform.json").write_text(RELEASED_ARTIFACT)
    loaded = Transform.load(tmp_path)
    expected = np.array(RELEASED_ROWS, dtype=np.float32)
    assert np.array_equal(loaded.transform(TABLE), expected)
    for i, record in enumerate(TABLE.to_pylist()):
        assert np.array_equal(loaded.transform_record(record), expected[i])
    # a fit today writes the same artifact: same keys, same values (the version stamp aside)
    written = json.loads(Transform(features=FEATURES).fit(TABLE).save(tmp_path / "new.json").read_text())
    released = json.loads(RELEASED_ARTIFACT)
    assert list(written) == list(released)
    assert {**written, "aiforge_version": None} == {**released, "aiforge_version": None}
    assert loaded.to_dict() | {"aiforge_version": None} == released | {"aiforge_version": None}


def test_transform_is_a_scikit_learn_estimator() -> None:
    from sklearn.base import BaseEstimator, clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t = Transform(features=FEATURES, nlp=None)
    assert isinstance(t, BaseEstimator) and vars(t) == {"features": FEATURES, "nlp": None}
    assert t.get_params() == {"features": FEATURES, "nlp": None}
    copy = clone(t.fit(TABLE))
    assert copy.get_params() == t.get_params() and not hasattr(copy, "state_")
    assert copy.set_params(features=FEATURES[:1]) is copy and copy.features == FEATURES[:1]
    assert copy.fit(TABLE).feature_names_ == ["x"]
    assert np.array_equal(t.fit_transform(TABLE), t.transform(TABLE))
    assert t.get_feature_names_out().tolist() == t.feature_names_
    pipeline = make_pipeline(Transform(features=FEATURES), StandardScaler())
    assert pipeline.fit_transform(TABLE).shape == (5, len(t.feature_names_))


def test_parameters_are_checked_in_fit() -> None:
    with pytest.raises(InvalidInput, match=r"^features must be a list or a tuple; got 'x'$"):
        Transform(features="x").fit(TABLE)
    with pytest.raises(InvalidInput, match=r"^nlp must be an instance of NlpOptions, a mapping or None; got 3$"):
        Transform(features=FEATURES, nlp=3).fit_statistics({"rows": 0}, {})


def test_pickling_drops_the_nlp_client_and_the_token_cache() -> None:
    import pickle

    t = Transform(features=FEATURES).fit(TABLE)
    assert "_cache" in vars(t)  # the text feature tokenized in-process
    copy = pickle.loads(pickle.dumps(t))
    assert "_cache" not in vars(copy) and "_client" not in vars(copy)
    assert np.array_equal(copy.transform(TABLE), t.transform(TABLE))
