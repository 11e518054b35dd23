"""The fitted feature transform of BATCH: statistics learned on the train split, applied anywhere.

:class:`Transform` is a scikit-learn estimator (``sklearn.clone``, ``get_params``, ``set_params`` and pipelines work):
``__init__`` only stores the feature specs, :meth:`Transform.fit` checks them and learns the statistics (means,
standard deviations, min/max, bucket edges, vocabularies, IDF, fill values) into attributes ending in ``_`` and
returns ``self``, and :meth:`Transform.transform` refuses to run before that. The fitted state is saved as a
versioned JSON artifact (``transform.json`` beside a feature snapshot) and :meth:`Transform.transform_record`
applies it to one JSON record at serving time with exactly the code that built the training rows.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from sklearn.base import BaseEstimator, TransformerMixin

from aiforge.batch import _encoders as enc
from aiforge.batch._feature_ops import Tokenizer, apply, check_types, learn
from aiforge.batch.spec import FeatureItem, NlpOptions
from aiforge.errors import ColumnNotFound, InvalidInput, NotFittedError
from aiforge.validation import ParamValidationMixin
from aiforge.version import __version__

__all__ = ["FORMAT_VERSION", "Transform"]

FORMAT_VERSION = 2  # the newest artifact version this aiforge reads
# version 2 added ``impute``; an artifact without it is still written as version 1, which aiforge 0.1 reads
_IMPUTE_VERSION = 2
# the texts that nlp.analyze sends to Kiwi: Hangul syllables, jamo and compatibility jamo
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


class Transform(TransformerMixin, ParamValidationMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Turn rows into fixed-size float32 feature vectors with statistics fitted on training rows.

    Parameters
    ----------
    features : sequence of FeatureItem or mapping
        The ``features`` entries of a batch spec, e.g. ``{"numeric": {"column": "x", "scale": "standardize"}}``.
    nlp : NlpOptions or mapping, optional
        Where text features get their tokens (the NLP API's ``url`` and client options). Without it text is
        tokenized in-process with :func:`aiforge.nlp.tokenize`.

    Attributes
    ----------
    state_ : list of dict
        What was learned per feature (``fill``, ``mean``, ``std``, ``min``, ``max``, ``edges``, ``vocabulary``,
        ``idf``); ``fill`` is the value that replaces a missing one, for features with ``impute``.
    feature_names_ : list of str
        One name per output column, ``D`` in all.
    input_types_ : dict of str to str
        The Arrow type of each input column, used to read records at serving time.
    n_train_ : int
        Training rows the statistics came from.

    The fitted attributes come from :meth:`fit`, :meth:`fit_statistics` or a saved artifact (:meth:`load`,
    :meth:`from_dict`).

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = Transform(features=[{"numeric": {"column": "x", "scale": "standardize"}},
    ...                         {"categorical": {"column": "c", "encoding": "onehot", "top_k": 1}}])
    >>> t = t.fit(pa.table({"x": [1.0, 3.0], "c": ["a", "a"]}))
    >>> t.feature_names_
    ['x', 'c=a', 'c=__other__']
    >>> t.transform_record({"x": 3.0, "c": "b"}).tolist()
    [1.0, 0.0, 1.0]
    """

    # the entries themselves are checked by the spec's pydantic models (with their own messages), in feature_items()
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "features": [list, tuple],
        "nlp": [NlpOptions, Mapping, None],
    }

    def __init__(
        self,
        *,
        features: Sequence[FeatureItem | Mapping[str, Any]] = (),
        nlp: NlpOptions | Mapping[str, Any] | None = None,
    ) -> None:
        self.features = features
        self.nlp = nlp

    def __getstate__(self) -> dict[str, Any]:  # Spark ships the transform to workers: no sockets, no token cache
        state = dict(super().__getstate__())
        state.pop("_client", None)
        state.pop("_cache", None)
        return state

    # -- parameters ----------------------------------------------------------------------------------------------

    def feature_items(self) -> list[FeatureItem]:
        """The ``features`` parameter as validated spec items, in order (what the BATCH plan and serving read)."""
        # validated once per `features` object: serving calls this on every record
        validated = self.__dict__.get("_validated")
        if validated is not None and validated[0] is self.features:
            items: list[FeatureItem] = validated[1]
            return items
        try:
            items = [f if isinstance(f, FeatureItem) else FeatureItem.model_validate(f) for f in self.features]
        except ValueError as exc:
            raise InvalidInput(f"invalid feature spec: {exc}") from exc
        self._validated = (self.features, items)
        return items

    def _nlp(self) -> NlpOptions | None:
        if self.nlp is None or isinstance(self.nlp, NlpOptions):
            return self.nlp
        return NlpOptions.model_validate(dict(self.nlp))

    @property
    def columns(self) -> list[str]:
        """The input columns the features read."""
        return list(dict.fromkeys(item.column for item in self.feature_items()))

    # -- fitting -------------------------------------------------------------------------------------------------

    def prepare(self, batch: pa.RecordBatch | pa.Table, tokenizer: Tokenizer | None = None) -> pa.RecordBatch:
        """The per-row values that statistics are computed from, one column per fitted feature.

        ``n{i}``: the numeric value after clip and log1p (null when missing or not finite); ``r{i}``: the raw
        numeric value (null when missing or not finite), for ``impute`` by a statistic; ``c{i}``: the category's
        string form; ``t{i}``: the distinct tokens of a text (TF-IDF only). Engines aggregate these columns
        (:mod:`aiforge.batch._plan`) and hand the results to :meth:`fit_statistics`.
        """
        columns: dict[str, pa.Array] = {}
        for i, item in enumerate(self.feature_items()):
            column = _column(batch, item.column)
            if item.numeric is not None:
                spec = item.numeric
                # with impute an infinite value is missing, as at transform time, not clipped to the bound
                raw = enc.numeric_values(column) if spec.impute else column
                values = enc.numeric_values(raw, spec.clip, spec.log1p)
                columns[f"n{i}"] = pa.array(values, pa.float64(), mask=np.isnan(values))
                if spec.impute in ("mean", "median", "most_frequent"):
                    columns[f"r{i}"] = pa.array(raw, pa.float64(), mask=np.isnan(raw))
            elif item.categorical is not None and (
                item.categorical.encoding != "hash" or item.categorical.impute == "most_frequent"
            ):
                columns[f"c{i}"] = enc.category_keys(column)
            elif item.text is not None and item.text.encoding == "tfidf":
                tokens = enc.tokens_of(column, tokenizer or self.tokenizer(), item.text.lowercase)
                columns[f"t{i}"] = pa.array([sorted(set(doc)) for doc in tokens], pa.list_(pa.string()))
        if not columns:
            columns["__rows"] = pa.array(np.zeros(batch.num_rows, dtype=np.int8))
        return pa.RecordBatch.from_pydict(columns)

    def fit(self, data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch], y: Any = None) -> Transform:
        """Learn the statistics from training rows (in-process, with DuckDB aggregations).

        Parameters
        ----------
        data : pyarrow.Table, RecordBatch or iterable of RecordBatch
            The training rows; must hold every column the features read.
        y : ignored
            For scikit-learn compatibility.

        Returns
        -------
        Transform
            ``self``, fitted.

        Raises
        ------
        ColumnNotFound
            A feature's column is not in ``data``.
        InvalidInput
            A numeric feature has no finite value in the training rows, or a feature reads a column of a type it
            cannot use (e.g. a numeric feature over strings).
        """
        from aiforge.batch._plan import duckdb_statistics

        self._validate_params()
        batches = [data] if isinstance(data, pa.Table | pa.RecordBatch) else list(data)
        batches = [b for part in batches for b in (part.to_batches() if isinstance(part, pa.Table) else [part])]
        if not batches:
            raise InvalidInput("cannot fit a Transform on no data; pass at least one row")
        schema = batches[0].schema
        check_types(self.feature_items(), {f.name: f.type for f in schema})
        prepared = [self.prepare(b) for b in batches]
        stats = duckdb_statistics(self, prepared, label=None)
        return self.fit_statistics(stats, {f.name: str(f.type) for f in schema})

    def fit_statistics(self, stats: Mapping[str, Any], input_types: Mapping[str, str]) -> Transform:
        """Learn from aggregated statistics (what an engine computed over :meth:`prepare`'s columns).

        Parameters
        ----------
        stats : mapping
            ``rows``; ``numeric`` {i: count, mean, std, min, max, quantiles}; ``counts`` {i: [[key, n], ...]}
            sorted by count then key; ``df`` {i: [[term, n], ...]} likewise; ``impute`` {i: value} for features that
            impute by a statistic (absent in statistics from before ``impute``).
        input_types : mapping of str to str
            Arrow type names of the input columns.

        Returns
        -------
        Transform
            ``self``.
        """
        self._validate_params()
        items = self.feature_items()
        missing = [c for c in self.columns if c not in input_types]
        if missing:
            raise ColumnNotFound(f"column {missing[0]!r} not found; available columns: {', '.join(input_types)}")
        rows = int(stats["rows"])
        state: list[dict[str, Any]] = []
        names: list[str] = []
        for i, item in enumerate(items):
            learned, outputs = learn(item, i, stats, rows)
            state.append(learned)
            names.extend(outputs)
        self.state_ = state
        self.feature_names_ = names
        self.input_types_ = {c: str(input_types[c]) for c in self.columns}
        self.n_train_ = rows
        return self

    # -- applying ------------------------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "state_"):
            raise NotFittedError(
                "this Transform is not fitted yet; call fit(...) first or load a saved one with Transform.load"
            )

    def tokenizer(self) -> Tokenizer:
        """The tokenizer text features use: the NLP API client when ``nlp`` is set, else the in-process one."""
        options = self._nlp()
        if options is None:
            return self._local_tokens
        client = self.__dict__.get("_client")  # opened on first use, not in __init__ (which only stores parameters)
        if client is None:
            from aiforge.nlp import NlpClient, NlpClientConfig

            config = NlpClientConfig(**options.model_dump())
            client = self._client = NlpClient.from_config(config)
        return lambda texts: client.tokenize(texts)

    def _local_tokens(self, texts: list[str]) -> list[list[str]]:
        from aiforge.nlp import simple_tokenize, tokenize

        cache: dict[str, list[str]] = self.__dict__.setdefault("_cache", {})
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        # Kiwi takes seconds to load; texts without Hangul never reach it (see nlp.analyze), so skip it for them
        korean = [t for t in todo if _HANGUL.search(t)]
        if korean:
            cache.update(zip(korean, tokenize(korean), strict=True))
        for text in todo:
            if text not in cache:
                cache[text] = [form for form, _ in simple_tokenize(text)]
        return [cache[t] for t in texts]

    def close(self) -> None:
        """Close the NLP API client, if one was opened."""
        client = self.__dict__.pop("_client", None)
        if client is not None:
            client.close()

    def transform(
        self, data: pa.Table | pa.RecordBatch | Mapping[str, Any], tokenizer: Tokenizer | None = None
    ) -> np.ndarray:
        """Features of every row, shape ``(N, D)``, float32.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ColumnNotFound
            A feature's column is missing from ``data``.
        ServiceError
            A text feature's NLP API failed after all retries.
        """
        self._check_fitted()
        n = data.num_rows if isinstance(data, pa.Table | pa.RecordBatch) else len(next(iter(data.values())))
        out = np.empty((n, len(self.feature_names_)), dtype=np.float32)
        at = 0
        for item, learned in zip(self.feature_items(), self.state_, strict=True):
            column = _column(data, item.column)
            block = apply(item, learned, column, n, tokenizer or self.tokenizer())
            out[:, at : at + block.shape[1]] = block  # float64 -> float32 once, in place
            at += block.shape[1]
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the output columns (``feature_names_``), as scikit-learn transformers give them.

        ``input_features`` is accepted for scikit-learn's API and ignored: the names come from the feature specs.
        """
        self._check_fitted()
        return np.asarray(self.feature_names_, dtype=object)

    def transform_record(self, record: Mapping[str, Any]) -> np.ndarray:
        """Features of one JSON record, shape ``(D,)``, float32: exactly the training features of that row.

        Raises
        ------
        ColumnNotFound
            The record lacks a column a feature reads.
        InvalidInput
            A value cannot be read as its column's type.

        Examples
        --------
        >>> t = Transform(features=[{"numeric": {"column": "x", "scale": "minmax"}}])
        >>> t.fit(pa.table({"x": [0.0, 4.0]})).transform_record({"x": 1.0}).tolist()
        [0.25]
        """
        self._check_fitted()
        if not isinstance(record, Mapping):
            raise InvalidInput(f"a record must be a JSON object (a dict); got {type(record).__name__}")
        arrays = {}
        for column, kind in self.input_types_.items():
            if column not in record:
                raise ColumnNotFound(
                    f"record has no key {column!r}; the transform reads: {', '.join(self.input_types_)}"
                )
            if column in self._numeric_only_columns():
                arrays[column] = _record_number(column, record[column], kind)
            else:
                arrays[column] = _record_array(column, record[column], kind)
        return self.transform(arrays)[0]

    def _numeric_only_columns(self) -> frozenset[str]:
        """Numeric input columns that only numeric features read: a served record passes them as numpy, not Arrow
        (64 tiny Arrow casts cost ~4 ms a record)."""
        # derived from both the spec and the fitted input types: a new fit (new input_types_ dict) recomputes it
        cached = self.__dict__.get("_numeric_only")
        if cached is not None and cached[0] is self.features and cached[1] is self.input_types_:
            columns: frozenset[str] = cached[2]
            return columns
        numeric = {c for c, kind in self.input_types_.items() if _is_number_type(_arrow_type(kind))}
        other = {item.column for item in self.feature_items() if item.numeric is None}
        columns = frozenset(numeric - other)
        self._numeric_only = (self.features, self.input_types_, columns)
        return columns

    # -- persistence ---------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted transform as JSON-ready data (the artifact's content)."""
        self._check_fitted()
        nlp = self._nlp()
        items = self.feature_items()
        imputes = any(getattr(item.body, "impute", None) is not None for item in items)
        return {
            "format": "aiforge.transform",
            "version": _IMPUTE_VERSION if imputes else 1,
            "aiforge_version": __version__,
            "features": [f.model_dump(mode="json", exclude_none=True) for f in items],
            "nlp": nlp.model_dump(mode="json") if nlp else None,
            "input_types": self.input_types_,
            "feature_names": self.feature_names_,
            "n_train": self.n_train_,
            "state": self.state_,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact as JSON to ``path`` (a file, or a folder to hold ``transform.json``)."""
        target = Path(path)
        if target.is_dir():
            target = target / "transform.json"
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, source: Any, *, workspace: Any = None) -> Transform:
        """Read a saved transform: a JSON file, a folder, a feature snapshot, or a snapshot ref (``name@v2``).

        Examples
        --------
        >>> t = Transform.load("orders_features@v1")  # doctest: +SKIP
        """
        if hasattr(source, "path") and hasattr(source, "manifest"):
            path = Path(source.path) / "transform.json"
        else:
            path = Path(source)
            if not path.exists() and isinstance(source, str):
                from aiforge.workspace import Workspace

                ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
                path = ws.get_snapshot(source).path / "transform.json"
            elif path.is_dir():
                path = path / "transform.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read transform artifact {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "(dict)") -> Transform:
        """A fitted transform from :meth:`to_dict`'s output."""
        if data.get("format") != "aiforge.transform":
            raise InvalidInput(f"{source} is not an aiforge transform artifact (no format 'aiforge.transform')")
        version = data.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InvalidInput(
                f"transform artifact {source} has version {version!r}; this aiforge reads versions up to "
                f"{FORMAT_VERSION}: upgrade aiforge"
            )
        out = cls(features=data["features"], nlp=data.get("nlp"))
        out.state_ = list(data["state"])
        out.feature_names_ = list(data["feature_names"])
        out.input_types_ = dict(data["input_types"])
        out.n_train_ = int(data["n_train"])
        return out


def _column(data: pa.Table | pa.RecordBatch | Mapping[str, Any], name: str) -> Any:
    if isinstance(data, Mapping):
        if name not in data:
            raise ColumnNotFound(f"column {name!r} not found; available columns: {', '.join(data)}")
        return data[name]
    if data.schema.get_field_index(name) < 0:
        raise ColumnNotFound(f"column {name!r} not found; available columns: {', '.join(data.schema.names)}")
    return data.column(name)


def _is_number_type(arrow_type: pa.DataType | None) -> bool:
    return arrow_type is not None and (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type))


def _record_number(column: str, value: Any, kind: str) -> np.ndarray:
    """One record's value of a numeric column as a float64 array (NaN when missing), checked like Arrow checks it."""
    if value is None:
        return np.array([np.nan])
    arrow_type = _arrow_type(kind)
    plain_float = isinstance(value, int | float) and not isinstance(value, bool) and pa.types.is_floating(arrow_type)
    plain_int = type(value) is int and arrow_type == pa.int64() and -(2**63) <= value < 2**63
    if plain_float or plain_int:
        return np.array([float(value)])
    # anything else (a string, a bool, a float for an integer column...) is checked and converted by Arrow, as in BATCH
    return _record_array(column, value, kind).cast(pa.float64()).to_numpy(zero_copy_only=False)


@functools.cache
def _arrow_type(kind: str) -> pa.DataType | None:
    try:
        return pa.type_for_alias(kind)
    except ValueError:
        return None


def _record_array(column: str, value: Any, kind: str) -> pa.Array:
    arrow_type = _arrow_type(kind)
    try:
        return pa.array([value], type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"record value {value!r} for {column!r} is not a {kind}: {exc}") from exc
