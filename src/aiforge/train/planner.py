"""The deadline planner: the fewest CPUs that still finish a training job before its deadline.

A production retrain only has to finish before the next refresh. The planner runs the job a few times on small
fractions of its data (the caller's ``measure`` callback does the running), fits a time model to those runs and picks
the smallest CPU quota whose pessimistic prediction (never less than the prediction plus a safety margin) fits the
time left.

The time model, for a ``fraction`` of the data on a quota of ``cpus`` (Amdahl's law with a quota)::

    T(fraction, cpus) = startup * (1 / min(cpus, 1) + threads_effect * (1 - 1 / ceil(cpus)))
                        + work * fraction * ((1 - parallel) / min(cpus, 1) + parallel / cpus)

``startup`` is what does not grow with the data (interpreter, imports, reading the snapshot) and ``work`` the seconds
per whole data set on one CPU, of which the share ``parallel`` spreads over several cores. ``threads_effect`` says
how that fixed part changes with the ``ceil(cpus)`` threads a quota runs, measured, not assumed: negative when it
runs on several threads too (Arrow reads Parquet with its own thread pool), positive when threads cost more than they
give (a small gradient boosting ran slower on 2 CPUs than on 1 here, which Amdahl's law alone cannot fit).

A CFS bandwidth quota below one CPU stretches *every* CPU-bound second by ``1 / cpus`` (the startup too: it runs
inside the quota), while above one CPU only the parallel share speeds up. The fit is least squares on ``log`` times
(errors are relative); its residual spread and the parameters' covariance give the uncertainty of a prediction, which
grows as the plan extrapolates from the calibration fractions to the whole data set.

Everything here is pure computation except :func:`plan`, which calls ``measure`` and nothing else, and
:func:`available_cpus`, which reads this process's CPU affinity and cgroup limit.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from aiforge.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "QUOTA_STEP",
    "Plan",
    "Sample",
    "TimeModel",
    "at_risk",
    "available_cpus",
    "calibration_points",
    "history_correction",
    "plan",
    "plan_from_samples",
    "quotas",
]

#: CPU quotas are chosen in steps of a quarter CPU: on a 2-core machine whole cores would leave nothing to choose.
QUOTA_STEP = 0.25
#: Run-to-run noise assumed before any residual is seen (5 %), worth this many residual degrees of freedom.
_PRIOR_REL_ERROR, _PRIOR_DOF = 0.05, 2.0
#: How far threads may change the fixed part: at most a halving per doubling (-1), at most a tripling (+2) on 2.
_EFFECT_RANGE = (-1.0, 4.0)
#: History: the last runs that count, and the range the correction factor is clipped to.
_HISTORY_RUNS, _CORRECTION_RANGE = 5, (0.5, 3.0)


def available_cpus() -> float:
    """CPUs this process may use: its affinity set, lowered by the CPU limit of its cgroup (v2 ``cpu.max`` or v1
    ``cpu.cfs_quota_us``) when one is set."""
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = float(os.cpu_count() or 1)
    for path in ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
        try:
            with open(path) as limit:
                fields = limit.read().split()
            if path.endswith("cfs_quota_us"):
                with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as period:
                    fields.append(period.read().strip())
            if fields[0] not in ("max", "-1"):
                cpus = min(cpus, int(fields[0]) / int(fields[1]))
            break
        except (OSError, ValueError, IndexError):
            continue
    return cpus


def quotas(max_cpus: float | None = None, step: float = QUOTA_STEP) -> list[float]:
    """The CPU quotas the planner chooses from: ``step, 2 * step, ...`` up to ``max_cpus``.

    Parameters
    ----------
    max_cpus : float, optional
        The largest quota; default :func:`available_cpus`.
    step : float, default 0.25
        The spacing of the quotas.

    Raises
    ------
    InvalidInput
        ``step`` is not positive or ``max_cpus`` is below one step.
    """
    top = available_cpus() if max_cpus is None else float(max_cpus)
    if not step > 0 or not math.isfinite(step):
        raise InvalidInput(f"the quota step must be a positive number of CPUs, got {step}; the default is {QUOTA_STEP}")
    if not top >= step:
        raise InvalidInput(f"max_cpus={top} is below one quota step ({step} CPU); give at least {step} CPUs")
    return [round(k * step, 6) for k in range(1, math.floor(top / step + 1e-9) + 1)]


# -- the time model -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One calibration run: ``fraction`` of the data on a quota of ``cpus`` took ``seconds``."""

    fraction: float
    cpus: float
    seconds: float


def _design(fraction: np.ndarray, cpus: np.ndarray, parallel: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The factors of the fixed part (at one thread), of the work, and of the threads' effect on the fixed part."""
    serial = 1.0 / np.minimum(cpus, 1.0)
    threaded = 1.0 - 1.0 / np.ceil(cpus - 1e-9)
    return serial, fraction * ((1.0 - parallel) * serial + parallel / cpus), threaded


def _times(theta: np.ndarray, fraction: np.ndarray, cpus: np.ndarray) -> np.ndarray:
    a, b, d = _design(fraction, cpus, float(theta[2]))
    return np.asarray(theta[0] * (a + theta[3] * d) + theta[1] * b)


def _log_gradient(theta: np.ndarray, fraction: np.ndarray, cpus: np.ndarray) -> np.ndarray:
    """d log T / d (startup, work, parallel, threads_effect), one row per point."""
    a, b, d = _design(fraction, cpus, float(theta[2]))
    t = theta[0] * (a + theta[3] * d) + theta[1] * b
    db_dp = fraction * (1.0 / cpus - 1.0 / np.minimum(cpus, 1.0))
    return np.column_stack([(a + theta[3] * d) / t, b / t, theta[1] * db_dp / t, theta[0] * d / t])


@dataclass(frozen=True)
class TimeModel:
    """How long a job takes on a fraction of its data and a CPU quota (see the module docstring for the formula).

    ``startup`` and ``work`` are seconds at one CPU, ``parallel`` the share of the work that spreads over cores,
    ``threads_effect`` how the fixed part changes with threads (-0.5: a quarter faster on 2 threads, see the module
    docstring; 0 without a calibration run above one CPU), ``rel_error`` the run-to-run spread (standard deviation of
    ``log(actual / predicted)``) and ``cov`` the covariance of (startup, work, parallel, threads_effect), from which
    :meth:`upper` adds the uncertainty of the fit itself.
    """

    startup: float
    work: float
    parallel: float
    rel_error: float
    n_samples: int
    threads_effect: float = 0.0
    cov: tuple[tuple[float, ...], ...] = field(default=(), repr=False)

    @classmethod
    def fit(cls, samples: Sequence[Sample]) -> TimeModel:
        """Fit the model to calibration runs by least squares on log times.

        Parameters
        ----------
        samples : sequence of Sample
            At least 3 runs at 2 or more fractions of the data. Without a run above one CPU nothing shows how the
            work parallelises, so ``parallel`` is 0: more cores are not assumed to help.

        Raises
        ------
        InvalidInput
            Too few runs, a single fraction, or a run with a non-positive fraction, quota or time.
        """
        from scipy.optimize import least_squares, nnls

        if len(samples) < 3:
            raise InvalidInput(f"fitting a time model needs at least 3 calibration runs, got {len(samples)}")
        f = np.array([s.fraction for s in samples], dtype=float)
        c = np.array([s.cpus for s in samples], dtype=float)
        t = np.array([s.seconds for s in samples], dtype=float)
        for name, v in (("fraction", f), ("cpus", c), ("seconds", t)):
            if not np.all(np.isfinite(v) & (v > 0)):
                raise InvalidInput(f"every calibration run needs a positive {name}, got {v.tolist()}")
        if len(np.unique(f)) < 2:
            raise InvalidInput(
                f"calibration runs all used the fraction {f[0]} of the data; startup and per-row work can only be "
                "told apart with runs at two or more fractions (for example 0.1 and 0.25)"
            )
        parallel_seen = bool(np.any(c > 1.0))
        # Global start: for each parallel share on a grid, times are linear in (startup, work, overhead): NNLS on
        # relative residuals, ties going to the smaller share; then all free parameters are refined on log
        # residuals. Without a run above 1 CPU neither the parallel share nor the thread overhead can be seen.
        start, start_norm = np.zeros(4), np.inf
        grid = [(p, g) for p in np.linspace(0.0, 1.0, 51) for g in np.linspace(*_EFFECT_RANGE, 41)]
        for p, g in grid if parallel_seen else [(0.0, 0.0)]:
            a, b, d = _design(f, c, p)
            coef, norm = nnls(np.column_stack([a + g * d, b]) / t[:, None], np.ones_like(t))
            if norm < start_norm - 1e-12:
                start, start_norm = np.array([coef[0], max(coef[1], 1e-9 * float(t.max())), p, g]), norm
        free = [0, 1, 2, 3] if parallel_seen else [0, 1]  # startup, work[, parallel, threads_effect]
        lower = np.array([0.0, 1e-12, 0.0, _EFFECT_RANGE[0]])
        upper = np.array([np.inf, np.inf, 1.0, _EFFECT_RANGE[1]])

        def full(x: np.ndarray) -> np.ndarray:
            theta = start.copy()
            theta[free] = x
            return theta

        def residuals(x: np.ndarray) -> np.ndarray:
            return np.asarray(np.log(_times(full(x), f, c)) - np.log(t))

        theta = start
        res = least_squares(residuals, start[free], bounds=(lower[free], upper[free]))
        if res.success and np.sum(res.fun**2) <= np.sum(residuals(start[free]) ** 2):
            theta = full(res.x)
        r = residuals(theta[free])
        dof = max(len(t) - len(free), 0)
        sigma2 = (_PRIOR_DOF * _PRIOR_REL_ERROR**2 + float(r @ r)) / (_PRIOR_DOF + dof)
        jac = _log_gradient(theta, f, c)[:, free]
        cov = np.zeros((4, 4))
        cov[np.ix_(free, free)] = sigma2 * np.linalg.pinv(jac.T @ jac)
        return cls(startup=float(theta[0]), work=float(theta[1]), parallel=float(theta[2]),
                   rel_error=math.sqrt(sigma2), n_samples=len(t), threads_effect=float(theta[3]),
                   cov=tuple(map(tuple, cov.tolist())))

    def _theta(self) -> np.ndarray:
        return np.array([self.startup, self.work, self.parallel, self.threads_effect])

    def startup_s(self, cpus: float) -> float:
        """Seconds of startup on a quota of ``cpus``."""
        return self.startup / min(cpus, 1.0)

    def predict(self, cpus: float, fraction: float = 1.0) -> float:
        """Predicted seconds for ``fraction`` of the data on a quota of ``cpus``."""
        if not cpus > 0:
            raise InvalidInput(f"cpus must be positive, got {cpus}")
        return float(_times(self._theta(), np.array([fraction]), np.array([float(cpus)]))[0])

    def rel_sd(self, cpus: float, fraction: float = 1.0) -> float:
        """Relative standard deviation of one run's time: run-to-run noise plus the fit's own uncertainty."""
        var = self.rel_error**2
        if self.cov:
            g = _log_gradient(self._theta(), np.array([fraction]), np.array([float(cpus)]))[0]
            var += max(float(g @ np.array(self.cov) @ g), 0.0)
        return math.sqrt(var)

    def upper(self, cpus: float, fraction: float = 1.0, z: float = 1.64) -> float:
        """The prediction at its pessimistic end: ``predict * exp(z * rel_sd)`` (z=1.64: 95 % of runs are faster
        if the model is right)."""
        return self.predict(cpus, fraction) * math.exp(z * self.rel_sd(cpus, fraction))


def calibration_points(
    max_cpus: float, *, fractions: tuple[float, float] = (0.1, 0.25), low_cpus: float = 0.5
) -> list[tuple[float, float]]:
    """The (fraction, cpus) runs that calibrate the model; five on a machine with more than one CPU.

    Both fractions run at 1 CPU and at ``max_cpus`` (the two give startup against work, and the parallel share),
    plus the larger fraction at ``max_cpus / 2`` when that is 2 or more, and the small fraction once at
    ``low_cpus`` (below one core, where the quota slows every second down). With work ``W`` seconds for the whole
    data at 1 CPU and startup ``S``, calibration costs about ``6 S + 0.55 W + 0.35 W (1 - parallel / 2)`` on
    2 CPUs: less than one full run at 1 CPU plus a few startups. Larger fractions predict better (less
    extrapolation) and cost more.

    Raises
    ------
    InvalidInput
        Fractions that are not two distinct values in (0, 1], or ``max_cpus`` not positive.
    """
    small, large = sorted(fractions)
    if not (0 < small < large <= 1):
        raise InvalidInput(f"calibration needs two different fractions in (0, 1], got {fractions}; try (0.1, 0.25)")
    if not max_cpus > 0:
        raise InvalidInput(f"max_cpus must be positive, got {max_cpus}")
    top = float(max_cpus)
    if top <= 1.0:
        low = min(low_cpus, top / 2)
        return [(small, top), (large, top), (small, low)]
    points = [(small, low_cpus), (small, 1.0), (large, 1.0), (small, top), (large, top)]
    if top >= 4:
        points.append((large, float(round(top / 2))))
    return points


# -- history and the plan -------------------------------------------------------------------------------------------


def history_correction(history: Sequence[tuple[float, float]]) -> float:
    """The factor that earlier runs of the same job say the model is off by.

    Parameters
    ----------
    history : sequence of (predicted_s, actual_s)
        Earlier runs, oldest first; ``predicted_s`` is the model's own prediction (:attr:`Plan.model_predicted_s`,
        before any correction), so corrections do not compound.

    Returns
    -------
    float
        The median of ``actual / predicted`` over the last 5 runs, clipped to [0.5, 3]; 1.0 without history.

    Raises
    ------
    InvalidInput
        A run with a non-positive or non-finite time (record only runs that finished).
    """
    ratios = []
    for predicted, actual in list(history)[-_HISTORY_RUNS:]:
        if not (math.isfinite(predicted) and math.isfinite(actual) and predicted > 0 and actual > 0):
            raise InvalidInput(
                f"history holds a run with predicted={predicted} s and actual={actual} s; both must be positive "
                "seconds: record only runs that finished"
            )
        ratios.append(actual / predicted)
    if not ratios:
        return 1.0
    return float(np.clip(np.median(ratios), *_CORRECTION_RANGE))


def _cpus(cpus: float) -> str:
    return f"{cpus:g} CPU" + ("" if cpus == 1 else "s")


def _fmt_s(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Plan:
    """The chosen quota and everything behind the choice.

    ``predicted_s`` and ``upper_s`` are for the whole data at ``cpus``, after the history ``correction``;
    ``candidates`` holds every quota tried (``cpus``, ``predicted_s``, ``upper_s``, ``needed_s`` = the larger of
    the upper bound and the prediction plus the margin, ``fits``); ``calibration_s`` is the wall time the
    calibration runs took (0 when planned from samples) and ``z`` the standard deviations in ``upper_s``.
    """

    cpus: float
    predicted_s: float
    upper_s: float
    budget_s: float
    deadline: datetime | None
    margin: float
    model: TimeModel
    candidates: list[dict[str, Any]]
    correction: float = 1.0
    samples: tuple[Sample, ...] = ()
    calibration_s: float = 0.0
    z: float = 1.28

    @property
    def confidence(self) -> float:
        """The share of runs the model expects to finish within ``upper_s`` (0.9 for z = 1.28)."""
        return 0.5 * (1.0 + math.erf(self.z / math.sqrt(2.0)))

    @property
    def model_predicted_s(self) -> float:
        """The model's prediction before the history correction: record this with the actual time as history."""
        return self.predicted_s / self.correction

    def table(self) -> Table:
        """A rich table of every quota tried: predicted time, its upper bound, the time it needs, whether it fits."""
        from rich.table import Table

        table = Table(title=f"Plan for a budget of {_fmt_s(self.budget_s)} (chosen quota in bold)")
        for name in ("CPUs", "predicted", f"upper ({self.confidence:.0%})", "needed", "fits"):
            table.add_column(name, justify="right")
        for row in self.candidates:
            chosen = row["cpus"] == self.cpus
            table.add_row(f"{row['cpus']:g}", _fmt_s(row["predicted_s"]), _fmt_s(row["upper_s"]),
                          _fmt_s(row["needed_s"]), "yes" if row["fits"] else "no",
                          style="bold green" if chosen else None)
        return table

    def summary(self) -> dict[str, Any]:
        """The plan as JSON-ready values."""
        m = self.model
        return {
            "cpus": self.cpus, "predicted_s": self.predicted_s, "upper_s": self.upper_s, "budget_s": self.budget_s,
            "deadline": self.deadline.isoformat() if self.deadline else None, "margin": self.margin, "z": self.z,
            "correction": self.correction, "model_predicted_s": self.model_predicted_s,
            "calibration_s": self.calibration_s,
            "model": {"startup_s": m.startup, "work_s": m.work, "parallel": m.parallel,
                      "threads_effect": m.threads_effect, "rel_error": m.rel_error, "n_samples": m.n_samples},
            "samples": [{"fraction": s.fraction, "cpus": s.cpus, "seconds": s.seconds} for s in self.samples],
            "candidates": [dict(row) for row in self.candidates],
        }

    def describe(self) -> str:
        """One paragraph for the user: the choice, its uncertainty, the budget, and why not one step less."""
        m = self.model
        when = f" (deadline {self.deadline.isoformat(timespec='seconds')})" if self.deadline else ""
        text = (
            f"{_cpus(self.cpus)}: predicted {_fmt_s(self.predicted_s)} (±{_fmt_s(self.upper_s - self.predicted_s)}; "
            f"{self.confidence:.0%} of runs within {_fmt_s(self.upper_s)}), which with at least "
            f"{self.margin:.0%} headroom fits the budget of {_fmt_s(self.budget_s)}{when}. "
            f"Fitted on {m.n_samples} calibration runs: {_fmt_s(m.startup)} startup and {_fmt_s(m.work)} of work "
            f"at 1 CPU, {m.parallel:.0%} of it parallel, run-to-run spread {m.rel_error:.0%}."
        )
        if abs(m.threads_effect) >= 0.05:
            change = "grows" if m.threads_effect > 0 else "shrinks"
            text += f" The fixed part {change} by {abs(m.threads_effect) / 2:.0%} on 2 threads."
        if self.calibration_s > 0:
            text += f" Calibrating took {_fmt_s(self.calibration_s)}."
        if self.correction != 1.0:
            text += f" Earlier runs of this job took {self.correction:.2f}x the model's prediction; applied."
        below = [row for row in self.candidates if row["cpus"] < self.cpus]
        if below:
            row = below[-1]
            text += f" {_cpus(row['cpus'])} would need {_fmt_s(row['needed_s'])}: too long."
        return text


def plan_from_samples(
    samples: Sequence[Sample],
    *,
    budget_s: float,
    max_cpus: float | None = None,
    margin: float = 0.1,
    history: Sequence[tuple[float, float]] = (),
    step: float = QUOTA_STEP,
    deadline: datetime | None = None,
    z: float = 1.28,
    calibration_s: float = 0.0,
) -> Plan:
    """Choose the smallest quota whose needed time fits ``budget_s``, from measured runs.

    A quota's needed time is ``correction * max(upper, predicted * (1 + margin))``: the pessimistic end of the
    prediction (``z`` standard deviations, 90 % of runs faster at the default), and never less than the prediction
    plus the margin. The two are not compounded: headroom on headroom buys more CPUs than the deadline needs.

    Parameters
    ----------
    samples : sequence of Sample
        Calibration runs (see :meth:`TimeModel.fit`).
    budget_s : float
        Seconds the run may take (the time to the deadline less the time to validate and deploy).
    max_cpus : float, optional
        The largest quota to consider; default :func:`available_cpus`.
    margin : float, default 0.1
        The least headroom over the prediction, kept even when the calibration runs agree closely.
    history : sequence of (predicted_s, actual_s)
        Earlier runs of the same job (see :func:`history_correction`).
    step : float, default 0.25
        Quota spacing.
    deadline : datetime, optional
        Shown in the plan; the budget is what counts.
    z : float, default 1.28
        Standard deviations in the upper prediction: 1.28 means each plan alone meets its budget in 90 % of runs
        when the model is right, 1.64 in 95 %.

    Raises
    ------
    InvalidInput
        A bad budget or margin, samples the model cannot be fitted to, or no quota that fits: the message gives the
        fastest prediction, the budget and what to change.
    """
    if not (math.isfinite(budget_s) and budget_s > 0):
        raise InvalidInput(f"the time budget must be a positive number of seconds, got {budget_s}")
    if not (math.isfinite(margin) and margin >= 0):
        raise InvalidInput(f"the safety margin must be a fraction >= 0 such as 0.1, got {margin}")
    model = TimeModel.fit(samples)
    correction = history_correction(history)
    candidates = []
    for cpus in quotas(max_cpus, step):
        predicted, upper = model.predict(cpus) * correction, model.upper(cpus, z=z) * correction
        needed = max(upper, predicted * (1 + margin))
        candidates.append({"cpus": cpus, "predicted_s": predicted, "upper_s": upper, "needed_s": needed,
                           "fits": bool(needed <= budget_s)})
    chosen = next((row for row in candidates if row["fits"]), None)
    if chosen is None:
        fast = min(candidates, key=lambda row: row["needed_s"])
        raise InvalidInput(
            f"no CPU quota up to {candidates[-1]['cpus']:g} fits the budget of {_fmt_s(budget_s)}: the fastest, "
            f"{_cpus(fast['cpus'])}, is predicted to take {_fmt_s(fast['predicted_s'])} (upper "
            f"{_fmt_s(fast['upper_s'])}, needs {_fmt_s(fast['needed_s'])} with its headroom); give a deadline "
            f"at least {_fmt_s(fast['needed_s'])} away, more CPUs, or less data"
        )
    return Plan(cpus=chosen["cpus"], predicted_s=chosen["predicted_s"], upper_s=chosen["upper_s"], budget_s=budget_s,
                deadline=deadline, margin=margin, model=model, candidates=candidates, correction=correction,
                samples=tuple(samples), calibration_s=calibration_s, z=z)


def plan(
    measure: Callable[[float, float], float],
    *,
    budget_s: float,
    max_cpus: float | None = None,
    margin: float = 0.1,
    history: Sequence[tuple[float, float]] = (),
    step: float = QUOTA_STEP,
    deadline: datetime | None = None,
    points: Sequence[tuple[float, float]] | None = None,
    z: float = 1.28,
) -> Plan:
    """Calibrate with ``measure`` and choose the smallest quota that fits ``budget_s``.

    Parameters
    ----------
    measure : callable (fraction, cpus) -> seconds
        Runs the real job on ``fraction`` of its data with a quota of ``cpus`` and returns its wall time.
    points : sequence of (fraction, cpus), optional
        The calibration runs; default :func:`calibration_points` for ``max_cpus``.
    budget_s : float
        Seconds from now until the run must be done. With a ``deadline`` the calibration runs spend this time
        too, so the run's budget (:attr:`Plan.budget_s`) is ``budget_s`` less their wall time
        (:attr:`Plan.calibration_s`); without one, ``budget_s`` is the run's own.
    max_cpus, margin, history, step, deadline, z
        As for :func:`plan_from_samples`.

    Raises
    ------
    InvalidInput
        ``measure`` returned a time that is not positive, calibration used up the time to the deadline, or as for
        :func:`plan_from_samples`.
    """
    top = available_cpus() if max_cpus is None else float(max_cpus)
    samples, start = [], time.monotonic()
    for fraction, cpus in points if points is not None else calibration_points(top):
        seconds = float(measure(fraction, cpus))
        if not (math.isfinite(seconds) and seconds > 0):
            raise InvalidInput(f"the calibration run on {fraction:g} of the data at {_cpus(cpus)} took {seconds} s; "
                               "measure must return its positive wall time in seconds")
        samples.append(Sample(fraction, cpus, seconds))
    calibration_s = time.monotonic() - start
    if deadline is not None:
        if budget_s - calibration_s <= 0:
            raise InvalidInput(
                f"calibrating took {_fmt_s(calibration_s)} of the {_fmt_s(budget_s)} before the deadline "
                f"{deadline.isoformat(timespec='seconds')}; no time is left for the run: give a later deadline"
            )
        budget_s -= calibration_s
    return plan_from_samples(samples, budget_s=budget_s, max_cpus=top, margin=margin, history=history, step=step,
                             deadline=deadline, z=z, calibration_s=calibration_s)


def at_risk(plan: Plan, elapsed_s: float, done_fraction: float, *, min_fraction: float = 0.02) -> str | None:
    """A one-line warning when the run, at its current pace, would finish after its budget; else ``None``.

    The startup part of the prediction happens once before the first step, so only the time after it is spread
    over the steps: ``finish = elapsed + (elapsed - startup) * (1 - done) / done``.

    Parameters
    ----------
    plan : Plan
        The plan the run follows.
    elapsed_s : float
        Seconds since the run started.
    done_fraction : float
        The share of the steps done, in [0, 1]; below ``min_fraction`` the pace says too little to project, and
        only a run already past its budget is warned about.

    Raises
    ------
    InvalidInput
        ``done_fraction`` outside [0, 1] or a negative ``elapsed_s``.
    """
    if not 0.0 <= done_fraction <= 1.0:
        raise InvalidInput(f"done_fraction must be in [0, 1], got {done_fraction}")
    if not elapsed_s >= 0:
        raise InvalidInput(f"elapsed_s must be >= 0 seconds, got {elapsed_s}")
    budget = _fmt_s(plan.budget_s)
    if elapsed_s > plan.budget_s:
        return (f"deadline missed: {_fmt_s(elapsed_s)} elapsed, {done_fraction:.0%} done, past the budget of "
                f"{budget} (planned {_cpus(plan.cpus)}, predicted {_fmt_s(plan.predicted_s)})")
    if done_fraction < max(min_fraction, 1e-9):
        return None
    startup = min(plan.model.startup_s(plan.cpus) * plan.correction, elapsed_s)
    finish = elapsed_s + (elapsed_s - startup) * (1.0 - done_fraction) / done_fraction
    if finish <= plan.budget_s:
        return None
    return (f"deadline at risk: {done_fraction:.0%} done after {_fmt_s(elapsed_s)}, projected finish at "
            f"{_fmt_s(finish)} > budget {budget} (planned {_cpus(plan.cpus)}, predicted {_fmt_s(plan.predicted_s)})")
