"""Learning and applying one feature: the statistics it keeps and the columns it outputs.

:func:`learn` turns aggregated statistics into a feature's fitted state and output names; :func:`apply` turns
an Arrow column into that feature's float64 block of shape ``(N, width)``. :class:`~aiforge.batch.transform.
Transform` calls both for each feature of a spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from aiforge.batch import _encoders as enc
from aiforge.batch.spec import FeatureItem, TextFeature
from aiforge.errors import InvalidInput

__all__ = ["DEFAULT_TOP_K", "apply", "learn"]

DEFAULT_TOP_K = 10
Tokenizer = Callable[[list[str]], list[list[str]]]


def _sorted_keys(pairs: Iterable[Sequence[Any]]) -> list[tuple[str, int]]:
    return sorted(((str(k), int(n)) for k, n in pairs), key=lambda kn: (-kn[1], kn[0]))


def learn(item: FeatureItem, i: int, stats: Mapping[str, Any], rows: int) -> tuple[dict[str, Any], list[str]]:
    name = item.name
    key = str(i)
    if item.numeric is not None:
        spec = item.numeric
        numeric = stats["numeric"][key]
        if not numeric["count"]:
            raise InvalidInput(
                f"feature {name!r}: column {spec.column!r} has no finite value in the train split after the drop "
                "rules (after clip/log1p); check the column or the drop rules"
            )
        std = float(numeric["std"] or 0.0)
        learned: dict[str, Any] = {
            "mean": float(numeric["mean"]),
            "std": std if std > 0 else 1.0,
            "min": float(numeric["min"]),
            "max": float(numeric["max"]),
        }
        if spec.bucketize is not None:
            edges = spec.bucketize.edges or sorted({float(q) for q in numeric["quantiles"]})
            learned["edges"] = edges
            return learned, [f"{name}#b{j}" for j in range(len(edges) + 1)]
        return learned, [name]
    if item.categorical is not None:
        spec_c = item.categorical
        if spec_c.encoding == "hash":
            return {}, [f"{name}#h{j}" for j in range(spec_c.buckets)]
        counts = _sorted_keys(stats["counts"][key])
        limit = spec_c.top_k or (DEFAULT_TOP_K if spec_c.encoding == "onehot" else None)
        vocabulary = [k for k, _ in counts[:limit]]
        if spec_c.encoding == "ordinal":
            return {"vocabulary": vocabulary}, [name]
        return {"vocabulary": vocabulary}, [f"{name}={v}" for v in vocabulary] + [f"{name}=__other__"]
    text = item.text
    if not isinstance(text, TextFeature):  # pragma: no cover - FeatureItem guarantees one kind
        raise InvalidInput(f"feature {name!r} has no kind")
    if text.encoding == "hash":
        return {}, [f"{name}#h{j}" for j in range(text.buckets)]
    frequencies = [(t, n) for t, n in _sorted_keys(stats["df"][key]) if n >= text.min_df][: text.max_features]
    vocabulary = [t for t, _ in frequencies]
    idf = [math.log((1 + rows) / (1 + n)) + 1.0 for _, n in frequencies]
    return {"vocabulary": vocabulary, "idf": idf}, [f"{name}:{t}" for t in vocabulary]


def apply(item: FeatureItem, learned: Mapping[str, Any], column: Any, n: int, tokenizer: Tokenizer) -> np.ndarray:
    if item.numeric is not None:
        spec = item.numeric
        values = enc.numeric_values(column, spec.clip, spec.log1p)
        values = np.where(np.isnan(values), learned["mean"], values)
        if spec.bucketize is not None:
            edges = np.asarray(learned["edges"], dtype=np.float64)
            out = np.zeros((n, len(edges) + 1), dtype=np.float64)
            out[np.arange(n), np.searchsorted(edges, values, side="right")] = 1.0
            return out
        if spec.scale == "standardize":
            values = (values - learned["mean"]) / learned["std"]
        elif spec.scale == "minmax":
            span = learned["max"] - learned["min"]
            values = (values - learned["min"]) / (span if span > 0 else 1.0)
        return values.reshape(n, 1)
    if item.categorical is not None:
        spec_c = item.categorical
        keys = enc.category_keys(column)
        if spec_c.encoding == "hash":
            index = enc.hashed_indices(keys, spec_c.buckets)
            out = np.zeros((n, spec_c.buckets), dtype=np.float64)
            rows = np.flatnonzero(index >= 0)
            out[rows, index[rows]] = 1.0
            return out
        vocabulary = learned["vocabulary"]
        index = enc.vocabulary_indices(keys, vocabulary)
        if spec_c.encoding == "ordinal":
            return index.astype(np.float64).reshape(n, 1)
        out = np.zeros((n, len(vocabulary) + 1), dtype=np.float64)
        out[np.arange(n), np.where(index < 0, len(vocabulary), index)] = 1.0
        return out
    text = item.text
    if not isinstance(text, TextFeature):  # pragma: no cover
        raise InvalidInput("feature without a kind")
    tokens = enc.tokens_of(column, tokenizer, text.lowercase)
    if text.encoding == "hash":
        return enc.term_counts(tokens, None, text.buckets)
    counts = enc.term_counts(tokens, learned["vocabulary"], len(learned["vocabulary"]))
    counts *= np.asarray(learned["idf"], dtype=np.float64)
    norms = np.linalg.norm(counts, axis=1, keepdims=True)
    return counts / np.where(norms > 0, norms, 1.0)
