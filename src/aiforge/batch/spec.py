"""The BATCH feature spec: a YAML document validated with pydantic, with errors that point at the key.

A spec names the input snapshot, the rows to drop, the features to compute, the id and label columns, the split
and the output snapshot::

    input: orders@v1
    output: orders_features
    id: order_id
    label: returned
    split: {train: 0.8, valid: 0.1, test: 0.1, seed: 0}
    nlp: {url: "http://127.0.0.1:8080", rate: 200/s}    # optional; without it text is tokenized in-process
    drop:
      - where: amount < 0                # a SQL predicate: rows where it is true are dropped
      - issue: duplicate_rows            # rows that repeat an earlier row exactly
      - issue: invalid_values            # NULL, NaN or +/-inf in a used column
    features:
      - numeric: {column: amount, clip: [0, 1000], log1p: true, scale: standardize}
      - numeric: {column: age, bucketize: {bins: 4}, impute: median}
      - categorical: {column: country, encoding: onehot, top_k: 5, impute: constant, fill_value: unknown}
      - categorical: {column: device, encoding: ordinal}
      - categorical: {column: user, encoding: hash, buckets: 16}
      - text: {column: review, encoding: tfidf, max_features: 1000}
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiforge.errors import InvalidInput
from aiforge.yamlio import read_yaml

__all__ = [
    "BatchSpec",
    "CategoricalFeature",
    "DropRule",
    "FeatureItem",
    "NlpOptions",
    "NumericFeature",
    "SplitSpec",
    "TextFeature",
    "load_spec",
]

ISSUES = ("duplicate_rows", "invalid_values")
Impute = Literal["mean", "median", "most_frequent", "constant"]


class _Strict(BaseModel):
    """A model that refuses unknown keys, naming the keys it allows."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [str(key) for key in data if key not in cls.model_fields]
            if unknown:
                allowed = ", ".join(cls.model_fields)
                raise ValueError(f"unknown key {unknown[0]!r}; allowed keys: {allowed}")
        return data


class Bucketize(_Strict):
    """Bucket edges: ``bins`` quantile buckets fitted on the train split, or fixed ``edges``."""

    bins: int | None = Field(default=None, ge=2, le=1000)
    edges: list[float] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Bucketize:
        if (self.bins is None) == (self.edges is None):
            raise ValueError("give either 'bins' (quantile buckets fitted on train) or 'edges', not both")
        if self.edges is not None and (not self.edges or sorted(set(self.edges)) != self.edges):
            raise ValueError(f"edges must be a non-empty, strictly increasing list of numbers, got {self.edges}")
        return self


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer beyond float64 (10**400 in YAML)
        return False


def _check_fill(impute: str | None, fill_value: Any, kind: str) -> None:
    """Refuse a ``fill_value`` without ``impute: constant``, a constant without one, or one of the wrong type."""
    if impute != "constant":
        if fill_value is not None:
            given = "no impute" if impute is None else f"impute {impute!r}"
            raise ValueError(
                f"fill_value {fill_value!r} is only used with 'impute: constant' (got {given}): "
                "set impute: constant or remove fill_value"
            )
        return
    if fill_value is None:
        example = "0" if kind == "numeric" else "unknown"
        raise ValueError(f"'impute: constant' needs a fill_value, e.g. fill_value: {example}")
    if kind == "numeric":
        if isinstance(fill_value, bool) or not isinstance(fill_value, int | float) or not _finite(fill_value):
            raise ValueError(f"fill_value of a numeric feature must be a finite number; got {fill_value!r}")
    elif isinstance(fill_value, bool) or not isinstance(fill_value, int | str):
        raise ValueError(
            f"fill_value of a categorical feature must be a category: a string (or an integer for integer "
            f"categories); got {fill_value!r}"
        )


class NumericFeature(_Strict):
    """A number: optionally imputed, clipped, then ``log1p``, then scaled or bucketized.

    ``impute`` fills missing values (null, NaN, +/-inf) of the column before clip and log1p: with the train split's
    ``mean``, ``median`` (exact, the average of the two middle values for an even count) or ``most_frequent``
    value (the smallest on ties) of the column, or with ``fill_value`` for ``constant``. Without it, and for values
    clip and log1p make non-finite, missing values become the train mean after clip and log1p.
    """

    column: str | None = None
    columns: str | list[str] | None = None
    name: str | None = None
    impute: Impute | None = None
    fill_value: Any = None
    clip: tuple[float, float] | None = None
    log1p: bool = False
    scale: Literal["standardize", "minmax", "none"] = "none"
    bucketize: Bucketize | None = None

    @model_validator(mode="after")
    def _fill(self) -> NumericFeature:
        _check_fill(self.impute, self.fill_value, "numeric")
        return self

    @field_validator("clip")
    @classmethod
    def _clip_order(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError("clip must be [low, high] with low < high")
        return value

    @model_validator(mode="after")
    def _scale_or_buckets(self) -> NumericFeature:
        if self.bucketize is not None and self.scale != "none":
            raise ValueError(f"choose scale ({self.scale!r}) or bucketize, not both")
        return self


class CategoricalFeature(_Strict):
    """A category: one-hot of the ``top_k`` most frequent train values plus "other", ordinal index, or hashing.

    ``impute`` fills missing categories before encoding: ``most_frequent`` with the train split's most frequent
    category (the smallest text on ties), ``constant`` with ``fill_value``. Without it a missing category is
    "other" (one-hot), -1 (ordinal) or all zeros (hash).
    """

    column: str | None = None
    columns: str | list[str] | None = None
    name: str | None = None
    encoding: Literal["onehot", "ordinal", "hash"] = "onehot"
    top_k: int | None = Field(default=None, ge=1, le=100_000)
    buckets: int = Field(default=32, ge=1, le=1_048_576)
    impute: Impute | None = None
    fill_value: Any = None

    @field_validator("impute")
    @classmethod
    def _categories_only(cls, value: str | None) -> str | None:
        if value in ("mean", "median"):
            raise ValueError(
                f"impute {value!r} needs numbers; a categorical feature takes 'most_frequent' or 'constant'"
            )
        return value

    @model_validator(mode="after")
    def _fill(self) -> CategoricalFeature:
        _check_fill(self.impute, self.fill_value, "categorical")
        return self


class TextFeature(_Strict):
    """Text: tokens from the NLP API (or the in-process tokenizer), then hashed counts or TF-IDF."""

    column: str | None = None
    columns: str | list[str] | None = None
    name: str | None = None
    encoding: Literal["hash", "tfidf"] = "tfidf"
    buckets: int = Field(default=256, ge=1, le=1_048_576)
    max_features: int = Field(default=1000, ge=1, le=1_000_000)
    min_df: int = Field(default=1, ge=1)
    lowercase: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_impute(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and ("impute" in data or "fill_value" in data):
            key = "impute" if "impute" in data else "fill_value"
            raise ValueError(
                f"a text feature takes no {key!r}: a missing text has no tokens (all zeros); impute it as a "
                "categorical feature, or fill it in the dump query"
            )
        return data


class FeatureItem(_Strict):
    """One entry of ``features``: exactly one of ``numeric``, ``categorical`` or ``text``.

    Its body names one ``column``, or selects several with ``columns``: a name pattern (``pixel_*``, shell-style:
    ``*``, ``?``, ``[...]``) or a list of patterns. A selector becomes one feature per matching column, with the
    same options, when the spec meets its input (:func:`aiforge.batch.expand_columns`): in table order, only
    columns of a type the feature can use (numbers for ``numeric``; text or booleans for ``categorical``, since
    integer categories are better named; text for ``text``), never the id, the label, or a column that another
    feature of the spec names or an earlier selector took.
    """

    numeric: NumericFeature | None = None
    categorical: CategoricalFeature | None = None
    text: TextFeature | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FeatureItem:
        given = [kind for kind in ("numeric", "categorical", "text") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                "each feature needs exactly one of 'numeric', 'categorical' or 'text'; got "
                + (", ".join(repr(g) for g in given) if given else "none")
            )
        body = self.body
        if (body.column is None) == (body.columns is None):
            raise ValueError(f"a {self.kind} feature needs exactly one of 'column' (a name) or 'columns' (a name "
                             "pattern such as 'pixel_*', or a list of them)")
        if body.columns is not None:
            patterns = [body.columns] if isinstance(body.columns, str) else body.columns
            if not patterns or not all(isinstance(p, str) and p.strip() for p in patterns):
                raise ValueError("'columns' must be a non-empty name pattern or a non-empty list of them")
            if body.name is not None:
                raise ValueError("'name' names one feature; with 'columns' each feature is named after its column")
        return self

    @property
    def selector(self) -> list[str] | None:
        """The ``columns`` patterns of a selector, or ``None`` for a feature of one named column."""
        columns = self.body.columns
        return [columns] if isinstance(columns, str) else (list(columns) if columns is not None else None)

    @property
    def column(self) -> str:
        """The one column the feature reads (a selector must be expanded first)."""
        if self.body.column is None:
            raise InvalidInput(f"feature selector columns={self.body.columns!r} is not expanded; "
                               "expand_columns(spec, types) turns it into one feature per column")
        return self.body.column

    @property
    def kind(self) -> str:
        return "numeric" if self.numeric else "categorical" if self.categorical else "text"

    @property
    def body(self) -> NumericFeature | CategoricalFeature | TextFeature:
        body = self.numeric or self.categorical or self.text
        if body is None:  # pragma: no cover - excluded by the validator
            raise InvalidInput("empty feature")
        return body

    @property
    def name(self) -> str:
        return self.body.name or self.body.column or f"columns {self.body.columns!r}"


class DropRule(_Strict):
    """Drop rows where the SQL predicate ``where`` is true, or rows with an ANALYZE ``issue``."""

    where: str | None = None
    issue: Literal["duplicate_rows", "invalid_values"] | None = None
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> DropRule:
        if (self.where is None) == (self.issue is None):
            raise ValueError("each drop rule needs exactly one of 'where' (a SQL predicate) or 'issue'")
        if self.where is not None and not self.where.strip():
            raise ValueError("'where' is empty; give a SQL predicate such as 'amount < 0'")
        if self.columns is not None and self.issue != "invalid_values":
            raise ValueError("'columns' only applies to 'issue: invalid_values'")
        return self

    @property
    def label(self) -> str:
        if self.where is not None:
            return f"where: {self.where.strip()}"
        return f"issue: {self.issue}" + (f" ({', '.join(self.columns)})" if self.columns else "")


class SplitSpec(_Strict):
    """Shares of the train/valid/test split (summing to 1) and the seed of the id hash."""

    train: float = Field(default=0.8, ge=0, le=1)
    valid: float = Field(default=0.1, ge=0, le=1)
    test: float = Field(default=0.1, ge=0, le=1)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> SplitSpec:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + valid + test must be 1; got {total:g}")
        if self.train <= 0:
            raise ValueError("train must be > 0: statistics are fitted on the train split")
        return self


class NlpOptions(_Strict):
    """How text features reach the NLP API (see :class:`aiforge.nlp.NlpClient`)."""

    url: str
    rate: str | float | None = None
    burst: int = Field(default=1, ge=1)
    batch_size: int = Field(default=256, ge=1)
    max_concurrency: int = Field(default=4, ge=1)
    retries: int = Field(default=8, ge=0)
    backoff: float = Field(default=0.05, gt=0)
    timeout: float = Field(default=60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, e.g. http://127.0.0.1:8080")
        return value


class BatchSpec(_Strict):
    """A whole BATCH spec (see the module docstring for an example)."""

    input: str
    output: str
    id: str
    label: str | None = None
    split: SplitSpec = SplitSpec()
    nlp: NlpOptions | None = None
    drop: list[DropRule] = []
    features: list[FeatureItem] = Field(min_length=1)

    @field_validator("features")
    @classmethod
    def _unique_names(cls, features: list[FeatureItem]) -> list[FeatureItem]:
        seen: set[str] = set()
        for item in features:
            if item.selector is not None:
                continue  # named after its columns once expanded, and checked again then
            if item.name in seen:
                raise ValueError(f"two features are named {item.name!r}; give one of them a distinct 'name'")
            seen.add(item.name)
        return features

    def used_columns(self) -> list[str]:
        """The snapshot columns the spec reads: id, label, then feature columns, without repeats."""
        columns = [self.id, *([self.label] if self.label else []), *(f.column for f in self.features)]
        return list(dict.fromkeys(columns))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_errors(exc: ValidationError, source: str) -> str:
    """Turn pydantic's errors into one message per key: where, what was given, what is allowed."""
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            lines.append(f"  {_path(error['loc'])}: required key missing")
            continue
        given = error.get("input")
        if isinstance(given, Mapping) or (isinstance(given, list) and any(isinstance(g, Mapping) for g in given)):
            # the message names the keys; a whole mapping would only be noise
            lines.append(f"  {_path(error['loc'])}: {message}")
            continue
        shown = repr(given)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        lines.append(f"  {_path(error['loc'])}: {message} (got {shown})")
    count = len(lines)
    head = f"invalid batch spec {source}: {count} error{'s' if count != 1 else ''}"
    return head + "\n" + "\n".join(lines)


def load_spec(spec: BatchSpec | Mapping[str, Any] | str | os.PathLike[str]) -> BatchSpec:
    """Read and validate a BATCH spec.

    Parameters
    ----------
    spec : BatchSpec, mapping, or path
        A validated spec (returned as is), a mapping with the spec's keys, or a YAML file path.

    Returns
    -------
    BatchSpec

    Raises
    ------
    InvalidInput
        The file cannot be read or parsed, or a key is missing, unknown or out of range; the message names
        each key as a path (``features[2].numeric.clip``), what it got and what is allowed.

    Examples
    --------
    >>> spec = load_spec({"input": "orders", "output": "orders_features", "id": "order_id",
    ...                   "features": [{"numeric": {"column": "amount", "scale": "standardize"}}]})
    >>> spec.features[0].name, spec.split.train
    ('amount', 0.8)
    """
    if isinstance(spec, BatchSpec):
        return spec
    source = "(mapping)"
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        source = str(path)
        data = read_yaml(path, "batch spec")
    else:
        data = spec
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"batch spec {source} must be a mapping with keys input, output, id, features; got {type(data).__name__}"
        )
    try:
        return BatchSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidInput(format_errors(exc, source)) from None
