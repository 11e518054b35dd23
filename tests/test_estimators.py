"""Every trainable class keeps the scikit-learn contract: found by walking the public packages, so a new one is checked
as soon as it is exported (and this file asks for a small fit example for it).

The contract (STYLE.md): ``__init__(self, *, ...)`` only stores its parameters; ``fit`` checks them against the
declared ``_parameter_constraints``, stores learned state in attributes ending in ``_`` and returns ``self``;
``predict``/``transform`` refuse to run before ``fit``; ``sklearn.clone``, ``get_params`` and ``set_params`` work.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn.base import clone

from aiforge.batch import Transform
from aiforge.clean import PICO, MultiSplitVote, SplitTrainCheck
from aiforge.errors import InvalidInput, NotFittedError

PUBLIC_PACKAGES = (
    "aiforge",
    "aiforge.workspace",
    "aiforge.engines",
    "aiforge.dump",
    "aiforge.analyze",
    "aiforge.batch",
    "aiforge.clean",
    "aiforge.nlp",
    "aiforge.evaluate",
    "aiforge.evaluate.ocr",
    "aiforge.serve",
    "aiforge.serve.inference",
    "aiforge.serve.aps",
    "aiforge.serve.deploy",
    "aiforge.serve.sizing",
)
# methods that need a fitted object; each must raise NotFittedError before fit
NEEDS_FIT = ("predict", "predict_proba", "predict_log_proba", "decision_function", "transform", "transform_record")


def trainable_classes() -> dict[str, type]:
    """Every class with a ``fit`` method that a public package exports, by its qualified name."""
    found: dict[str, type] = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and callable(getattr(obj, "fit", None)):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def _blobs() -> tuple[Any, Any]:
    """60 points, three separated classes, two labels flipped."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(60, 2)) * 0.4 + np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])[y]
    y[[0, 20]] = [1, 2]
    return X, y


def _rows() -> tuple[Any, Any]:
    return pa.table({"x": [0.0, 2.0, 4.0], "c": ["a", "b", "a"]}), None


# A small fit per trainable class, with parameters away from their defaults so that the round trips are not trivial.
EXAMPLES: dict[type, tuple[dict[str, Any], Callable[[], tuple[Any, Any]]]] = {
    PICO: (
        {"checker": "nb", "n_iter": 2, "n_folds": 3, "n_repeats": 1, "threshold": 0.6, "random_state": 3},
        _blobs,
    ),
    MultiSplitVote: ({"checker": "nb", "n_folds": 3, "n_repeats": 2, "min_votes": 0.6, "random_state": 3}, _blobs),
    SplitTrainCheck: ({"checker": "nb", "held_out": 0.4, "threshold": 0.6, "random_state": 3}, _blobs),
    Transform: (
        {
            "features": [
                {"numeric": {"column": "x", "scale": "minmax"}},
                {"categorical": {"column": "c", "encoding": "onehot"}},
            ]
        },
        _rows,
    ),
}
CLASSES = sorted(EXAMPLES, key=lambda cls: cls.__name__)


def _make(cls: type) -> tuple[Any, dict[str, Any], Any, Any]:
    params, data = EXAMPLES[cls]
    X, y = data()
    return cls(**params), params, X, y


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "tocsr"):
        return a.shape == b.shape and (a != b).nnz == 0
    if hasattr(a, "equals"):  # pandas
        return bool(a.equals(b))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_every_trainable_class_has_a_fit_example() -> None:
    found = trainable_classes()
    missing = sorted(set(found) - {f"{cls.__module__}.{cls.__qualname__}" for cls in EXAMPLES})
    assert not missing, f"add a small fit example to EXAMPLES in {__file__} for: {', '.join(missing)}"
    assert {PICO, MultiSplitVote, SplitTrainCheck, Transform} <= set(found.values())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_init_only_stores_its_keyword_parameters(cls: type) -> None:
    estimator, params, _, _ = _make(cls)
    signature = inspect.signature(cls.__init__)
    names = [p for p in signature.parameters if p != "self"]
    assert all(signature.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY for p in names)
    # nothing but the parameters, each the very object given (or the default): no work, no derived state
    assert vars(estimator) == estimator.get_params(deep=False)
    assert sorted(vars(estimator)) == sorted(names)
    for name, value in params.items():
        assert vars(estimator)[name] is value, name
    for name in set(names) - set(params):
        assert vars(estimator)[name] is signature.parameters[name].default or (
            vars(estimator)[name] == signature.parameters[name].default
        ), name


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_parameter_has_declared_constraints_checked_in_fit(cls: type) -> None:
    estimator, _, X, y = _make(cls)
    assert set(cls._parameter_constraints) == set(estimator.get_params(deep=False))  # type: ignore[attr-defined]
    # __init__ accepts anything (scikit-learn validates in fit); fit names the first bad parameter
    junk = {name: object() for name in estimator.get_params(deep=False)}
    bad = cls(**junk)
    assert bad.get_params(deep=False) == junk
    with pytest.raises(InvalidInput, match=r"^\w+ must be .*; got an object of type object$"):
        bad.fit(X, y)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_clone_get_params_and_set_params(cls: type) -> None:
    estimator, params, X, y = _make(cls)
    copy = clone(estimator)
    assert type(copy) is cls and copy is not estimator
    assert copy.get_params(deep=False) == estimator.get_params(deep=False)
    assert {k: copy.get_params(deep=False)[k] for k in params} == params
    name, value = next(iter(params.items()))
    default = inspect.signature(cls.__init__).parameters[name].default
    assert copy.set_params(**{name: default}) is copy
    assert copy.get_params(deep=False)[name] == default and estimator.get_params(deep=False)[name] is value
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        copy.set_params(nope=1)
    # a clone of a fitted estimator is unfitted, and fits to the same result (same parameters, same seed)
    fitted = estimator.fit(X, y)
    assert fitted is estimator
    learned = {k: v for k, v in vars(fitted).items() if k.endswith("_") and not k.startswith("_")}
    assert learned, f"{cls.__name__}.fit stored no attribute ending in '_'"
    again = clone(fitted)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(again))
    again.fit(X, y)
    for key, value in learned.items():
        assert _same(getattr(again, key), value), key


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_nothing_fitted_is_usable_before_fit(cls: type) -> None:
    estimator, _, X, y = _make(cls)
    for method in NEEDS_FIT:
        if hasattr(estimator, method):
            with pytest.raises(NotFittedError, match=rf"this {cls.__name__} is not fitted yet"):
                getattr(estimator, method)(X)
    if hasattr(estimator, "get_feature_names_out"):
        with pytest.raises(NotFittedError):
            estimator.get_feature_names_out()
    learned = [k for k in vars(clone(estimator).fit(X, y)) if k.endswith("_") and not k.startswith("_")]
    for name in learned:
        with pytest.raises(AttributeError):  # NotFittedError is one, with the message that says to call fit
            getattr(estimator, name)
