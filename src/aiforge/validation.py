"""Declared parameter constraints: what each parameter accepts, written once beside the parameters and checked in
one place, with one form of message.

A trainable class lists its parameters' constraints in the class attribute ``_parameter_constraints`` and checks
them at the start of ``fit`` (``__init__`` only stores parameters, as scikit-learn requires); a function checks its
own arguments with the same call. Each parameter has a list of constraints and a value is accepted when it
satisfies at least one of them::

    >>> from numbers import Integral, Real
    >>> constraints = {
    ...     "n_folds": [Interval(Integral, 2, None, closed="left")],
    ...     "threshold": [Interval(Real, 0, 1, closed="right")],
    ...     "checker": [str, HasMethods("fit", "predict_proba"), None],
    ... }
    >>> validate_params({"n_folds": 4, "threshold": 0.5, "checker": None}, constraints)
    >>> validate_params({"n_folds": 1, "threshold": 0.5, "checker": None}, constraints)
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidParameter: n_folds must be an integer >= 2; got 1
    >>> validate_params({"n_folds": 4, "threshold": 0.5, "checker": 3}, constraints)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiforge.errors.InvalidParameter: checker must be a string, an object with fit and predict_proba methods ...; got 3

A constraint is one of:

- :class:`Interval`: an integer or a real number within bounds (``True``/``False`` never count as numbers);
- :class:`Options`: one of a fixed set of values;
- a type, or :class:`InstanceOf` several: an instance of it;
- ``None``: the value ``None``;
- ``"boolean"``: ``True`` or ``False`` (Python's or numpy's);
- :class:`HasMethods`: an object with the named methods (a scikit-learn classifier, say);
- :class:`Hidden` of any of these: accepted but not offered in messages (a sentinel such as ``"deprecated"``).

scikit-learn's ``sklearn/utils/_paramvalidation.py`` is the model; this is a much smaller version that raises
:class:`~aiforge.errors.InvalidParameter` (an :class:`~aiforge.errors.InvalidInput`) with the house message
``"<name> must be <what>; got <value>"``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar, Literal, cast

from aiforge.errors import InvalidInput, InvalidParameter

__all__ = [
    "DEPRECATED",
    "RANDOM_STATE",
    "Constraint",
    "HasMethods",
    "Hidden",
    "InstanceOf",
    "Interval",
    "Options",
    "ParamValidationMixin",
    "make_constraint",
    "renamed_param",
    "validate_params",
]

#: The default of a parameter kept for one release under its old name: any other value means the caller used it.
DEPRECATED = "deprecated"


class Constraint(ABC):
    """One kind of acceptable value."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` is acceptable."""

    @abstractmethod
    def describe(self, name: str) -> list[str]:
        """The acceptable values in words, one entry per alternative (``name`` is the parameter's name)."""


class Interval(Constraint):
    """Integers (``kind=Integral``) or real numbers (``kind=Real``, integers included) between two bounds.

    Parameters
    ----------
    kind : numbers.Integral or numbers.Real
    left, right : number or None
        The bounds; ``None`` leaves that side open-ended.
    closed : {'left', 'right', 'both', 'neither'}, default 'both'
        Which bounds are themselves allowed.

    Examples
    --------
    >>> Interval(Real, 0, 1, closed="right").describe("threshold")
    ['a number with 0 < threshold <= 1']
    >>> Interval(Integral, 1, None, closed="left").describe("n_iter")
    ['a positive integer']
    """

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        *,
        closed: Literal["left", "right", "both", "neither"] = "both",
    ) -> None:
        if kind not in (Integral, Real):
            raise TypeError(f"Interval kind must be numbers.Integral or numbers.Real; got {kind!r}")
        if closed not in ("left", "right", "both", "neither"):
            raise TypeError(f"Interval closed must be 'left', 'right', 'both' or 'neither'; got {closed!r}")
        if left is not None and right is not None and left > right:
            raise TypeError(f"Interval bounds are reversed: {left} > {right}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        number = cast(float, value)
        if number != number:  # NaN is in no interval
            return False
        low_ok = self.closed in ("left", "both")
        high_ok = self.closed in ("right", "both")
        if self.left is not None and (number < self.left or (number == self.left and not low_ok)):
            return False
        return not (self.right is not None and (number > self.right or (number == self.right and not high_ok)))

    def describe(self, name: str) -> list[str]:
        noun = "an integer" if self.kind is Integral else "a number"
        left_in = self.closed in ("left", "both")
        high = "<=" if self.closed in ("right", "both") else "<"
        if self.left is None:
            return [f"{noun} {high} {self.right}"] if self.right is not None else [noun]
        if self.right is None:
            if (self.left == 0 and not left_in) or (self.kind is Integral and self.left == 1 and left_in):
                return [f"a positive {'integer' if self.kind is Integral else 'number'}"]
            return [f"{noun} {'>=' if left_in else '>'} {self.left}"]
        return [f"{noun} with {self.left} {'<=' if left_in else '<'} {name} {high} {self.right}"]


class Options(Constraint):
    """One of the given values.

    Examples
    --------
    >>> Options("reference", "paper").describe("mode")
    ["'reference'", "'paper'"]
    """

    def __init__(self, *values: Any) -> None:
        if not values:
            raise TypeError("Options needs at least one value")
        self.values = values

    def is_satisfied_by(self, value: Any) -> bool:
        return any(_same(value, option) for option in self.values)

    def describe(self, name: str) -> list[str]:
        return [repr(option) for option in self.values]


class InstanceOf(Constraint):
    """An instance of any of the given types. ``True``/``False`` do not count as numbers unless ``bool`` is listed.

    Examples
    --------
    >>> InstanceOf(list, tuple).describe("features")
    ['a list', 'a tuple']
    """

    def __init__(self, *types: type) -> None:
        if not types or not all(isinstance(t, type) for t in types):
            raise TypeError(f"InstanceOf needs types; got {types!r}")
        self.types = types

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and not any(t in (bool, object) for t in self.types):
            return False
        return isinstance(value, self.types)

    def describe(self, name: str) -> list[str]:
        return [_type_words(t) for t in self.types]


class HasMethods(Constraint):
    """Any object with these methods (duck typing: a scikit-learn estimator, a file-like object).

    Examples
    --------
    >>> HasMethods("fit", "predict_proba").describe("checker")
    ['an object with fit and predict_proba methods']
    """

    def __init__(self, *methods: str) -> None:
        if not methods:
            raise TypeError("HasMethods needs at least one method name")
        self.methods = methods

    def is_satisfied_by(self, value: Any) -> bool:
        return all(callable(getattr(value, method, None)) for method in self.methods)

    def describe(self, name: str) -> list[str]:
        kind = "method" if len(self.methods) == 1 else "methods"
        return [f"an object with {_join(list(self.methods), 'and')} {kind}"]


class Hidden(Constraint):
    """Accepts what ``constraint`` accepts but never offers it in a message (a sentinel default, say)."""

    def __init__(self, constraint: Any) -> None:
        self.constraint = make_constraint(constraint)

    def is_satisfied_by(self, value: Any) -> bool:
        return self.constraint.is_satisfied_by(value)

    def describe(self, name: str) -> list[str]:
        return []


class _IsNone(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self, name: str) -> list[str]:
        return ["None"]


class _Boolean(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        # numpy's bool_ without importing numpy: a boolean mask's element is a fine flag
        kind = type(value)
        return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool_", "bool"))

    def describe(self, name: str) -> list[str]:
        return ["True", "False"]


#: ``random_state`` as scikit-learn users type it: a non-negative integer seed, or None for a fresh one per fit.
RANDOM_STATE: tuple[Any, ...] = (Interval(Integral, 0, None, closed="left"), None)


def make_constraint(constraint: Any) -> Constraint:
    """The :class:`Constraint` that a declared constraint stands for (``None``, ``"boolean"``, a type, or one)."""
    if isinstance(constraint, Constraint):
        return constraint
    if constraint is None:
        return _IsNone()
    if isinstance(constraint, str) and constraint == "boolean":
        return _Boolean()
    if isinstance(constraint, type):
        return InstanceOf(constraint)
    raise TypeError(f"unknown parameter constraint {constraint!r}")


def validate_params(params: Mapping[str, Any], constraints: Mapping[str, Sequence[Any]]) -> None:
    """Check every value in ``params`` that has constraints declared in ``constraints``.

    Parameters
    ----------
    params : mapping of str to any
        Parameter name -> value, e.g. ``estimator.get_params(deep=False)``.
    constraints : mapping of str to list
        Parameter name -> the constraints of which the value must satisfy at least one. Parameters without an entry
        are not checked.

    Raises
    ------
    InvalidParameter
        ``"<name> must be <the acceptable values>; got <the value>"`` for the first value that satisfies none.
    """
    for name, value in params.items():
        declared = constraints.get(name)
        if declared is None:
            continue
        made = [make_constraint(c) for c in declared]
        if any(c.is_satisfied_by(value) for c in made):
            continue
        wanted = [words for c in made for words in c.describe(name)]
        raise InvalidParameter(f"{name} must be {_join(wanted, 'or')}; got {_shown(value)}")


class ParamValidationMixin:
    """``_validate_params()`` for an estimator that declares ``_parameter_constraints``; call it first in ``fit``.

    It replaces scikit-learn's method of the same name, so scikit-learn's own machinery checks these constraints too.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:  # pass class keywords on (scikit-learn's output mixin has some)
        super().__init_subclass__(**kwargs)

    def _validate_params(self) -> None:
        validate_params(cast(Any, self).get_params(deep=False), self._parameter_constraints)


def renamed_param(
    owner: str,
    params: Mapping[str, Any],
    old: str,
    new: str,
    *,
    default: Any,
    translate: Mapping[Any, Any] | None = None,
    stacklevel: int = 3,
) -> Any:
    """The value of parameter ``new``, or of ``old`` (its name until now) with a ``FutureWarning``.

    ``old`` is unused while it holds :data:`DEPRECATED`. ``translate`` maps an old value to its new spelling
    (``{"loky": "local"}``). Giving both names with different values is an error. ``stacklevel`` is passed to
    :func:`warnings.warn`; the default points at the caller of the function that calls this one.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     renamed_param("PICO", {"seed": 3, "random_state": 0}, "seed", "random_state", default=0)
    3
    >>> print(caught[0].message)
    PICO: seed= is deprecated and will stop working in the next aiforge release; use random_state=3 instead
    """
    value = params[old]
    if isinstance(value, str) and value == DEPRECATED:
        return params[new]
    if translate is not None:
        value = translate.get(value, value)
    current = params[new]
    if not _same(current, default) and not _same(current, value):
        raise InvalidInput(
            f"{owner} got both {new}={current!r} and {old}={params[old]!r}; {old} is the old name of {new}: "
            f"pass only {new}"
        )
    warnings.warn(
        f"{owner}: {old}= is deprecated and will stop working in the next aiforge release; use {new}={value!r} instead",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return value


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, bool) != isinstance(b, bool):  # True == 1 in Python; not as a parameter value
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compare element-wise
        return False


_TYPE_WORDS = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "a list",
    tuple: "a tuple",
    dict: "a dict",
    Mapping: "a mapping",
    Sequence: "a sequence",
}


def _type_words(kind: type) -> str:
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    return f"an instance of {kind.__name__}"


def _join(words: list[str], conjunction: str) -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def _shown(value: Any) -> str:
    text = repr(value)
    if text.startswith("<"):  # the default object repr says little beyond the type
        return f"an object of type {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:77]}... ({type(value).__name__})"
