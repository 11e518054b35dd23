"""VALIDATE: compare a candidate model with the one in production before it is deployed.

:func:`compare_predictions` measures how often the two models disagree (overall, right-to-wrong, per class and per
slice) with exact binomial bounds, and :func:`churn_baseline` what retraining the same model alone changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.validate.disagreement import Disagreement, Rate, binomial_interval, churn_baseline, compare_predictions

__all__ = ["Disagreement", "Rate", "binomial_interval", "churn_baseline", "compare_predictions"]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "Disagreement": "aiforge.validate.disagreement",
        "Rate": "aiforge.validate.disagreement",
        "binomial_interval": "aiforge.validate.disagreement",
        "churn_baseline": "aiforge.validate.disagreement",
        "compare_predictions": "aiforge.validate.disagreement",
    },
)
