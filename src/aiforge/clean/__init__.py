"""CLEAN: find and correct noisy labels (PICO, multi-split vote, split-train-check) and the stage that runs them.

``aiforge.clean(snapshot, label=...)`` calls :func:`clean`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.clean._clean import METHODS, CleanResult, clean
    from aiforge.clean.checkers import CHECKERS, make_checker
    from aiforge.clean.pico import PICO
    from aiforge.clean.vote import MultiSplitVote, SplitTrainCheck

__all__ = ["CHECKERS", "METHODS", "PICO", "CleanResult", "MultiSplitVote", "SplitTrainCheck", "clean", "make_checker"]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "CHECKERS": "aiforge.clean.checkers",
        "METHODS": "aiforge.clean._clean",
        "PICO": "aiforge.clean.pico",
        "CleanResult": "aiforge.clean._clean",
        "MultiSplitVote": "aiforge.clean.vote",
        "SplitTrainCheck": "aiforge.clean.vote",
        "clean": "aiforge.clean._clean",
        "make_checker": "aiforge.clean.checkers",
    },
    call="clean",
)
