"""CLEAN: find and correct noisy labels (PICO, multi-split vote, split-train-check) and the stage that runs them."""

from __future__ import annotations

from aiforge.labels.checkers import CHECKERS, make_checker
from aiforge.labels.clean import METHODS, CleanResult, clean
from aiforge.labels.pico import PICO
from aiforge.labels.vote import MultiSplitVote, SplitTrainCheck

__all__ = ["CHECKERS", "METHODS", "PICO", "CleanResult", "MultiSplitVote", "SplitTrainCheck", "clean", "make_checker"]
