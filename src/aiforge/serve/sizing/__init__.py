"""Sizing: the load tester and the capacity planner built on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiforge.lazy import lazy_names

if TYPE_CHECKING:
    from aiforge.serve.sizing.load import LoadTestResult, loadtest
    from aiforge.serve.sizing.planner import CapacityPlan, capacity, write_plot

__all__ = [
    "CapacityPlan",
    "LoadTestResult",
    "capacity",
    "loadtest",
    "write_plot",
]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "CapacityPlan": "aiforge.serve.sizing.planner",
        "LoadTestResult": "aiforge.serve.sizing.load",
        "capacity": "aiforge.serve.sizing.planner",
        "loadtest": "aiforge.serve.sizing.load",
        "write_plot": "aiforge.serve.sizing.planner",
    },
)
