"""The scikit-learn shaped base of the label cleaners: fitted attributes, the issues table, the not-fitted error."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from aiforge.clean._engine import seed_of
from aiforge.errors import NotFittedError
from aiforge.validation import ParamValidationMixin, renamed_param

__all__ = ["LabelCleaner"]


class LabelCleaner(ParamValidationMixin, BaseEstimator):
    """Shared by :class:`SplitTrainCheck`, :class:`MultiSplitVote` and :class:`PICO`.

    Each subclass declares its parameters' constraints in ``_parameter_constraints``; ``fit`` checks them first.
    After ``fit`` every subclass has ``classes_`` (K,), ``corrected_labels_`` (N,), ``label_posterior_`` (N, K),
    ``transition_`` (K, K), ``history_`` (list of (N,) label arrays, the given labels first), ``issues_`` and
    ``engine_`` (the :class:`~aiforge.engines.Engine` its checkers ran on).
    """

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails: a learned attribute asked for before fit
        if name.endswith("_") and not name.startswith("__"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) before using {name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _seed(self) -> int:
        """The integer seed of this fit: ``random_state`` (or the deprecated ``seed``); ``None`` draws a fresh one."""
        params = self.get_params(deep=False)
        return seed_of(renamed_param(type(self).__name__, params, "seed", "random_state", default=0, stacklevel=4))

    def _finish(
        self,
        classes: np.ndarray,
        given: np.ndarray,
        history: list[np.ndarray],
        changed_at: np.ndarray,
        posterior: Any,
        transition: np.ndarray,
    ) -> None:
        """Store the learned attributes from label codes; ``posterior`` is (N, K) dense or CSR."""
        final = history[-1]
        self.classes_ = classes
        self.corrected_labels_ = classes[final]
        self.history_ = [classes[h] for h in history]
        self.label_posterior_ = posterior
        self.transition_ = transition
        self.n_iter_ = len(history) - 1
        changed = np.flatnonzero(final != given)
        confidence = _posterior_at(posterior, changed, final[changed])
        import pandas as pd

        self.issues_ = pd.DataFrame(
            {
                "index": changed,
                "given_label": classes[given[changed]],
                "suggested_label": classes[final[changed]],
                "confidence": confidence,
                "iteration": changed_at[changed],
            }
        ).sort_values(["confidence", "index"], ascending=[False, True], ignore_index=True)


def _posterior_at(posterior: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float64)
    if hasattr(posterior, "tocsr"):
        return np.asarray(posterior[rows, cols]).ravel().astype(np.float64)
    return np.asarray(posterior[rows, cols], dtype=np.float64)
