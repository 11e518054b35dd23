"""The deadline planner: time model fit, quota choice, history, progress warnings and deadline parsing."""

from __future__ import annotations

import io
import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from aiforge.errors import InvalidInput
from aiforge.train import planner
from aiforge.train.deadline import parse_deadline, parse_duration
from aiforge.train.planner import (
    QUOTA_STEP,
    Sample,
    TimeModel,
    at_risk,
    available_cpus,
    calibration_points,
    history_correction,
    plan,
    plan_from_samples,
    quotas,
)

NOW = datetime(2026, 12, 2, 5, 0, 0, tzinfo=UTC)


def true_time(fraction: float, cpus: float, startup: float = 1.0, work: float = 20.0, parallel: float = 0.8) -> float:
    """The model's formula written out: startup and serial work slow down below one core, parallel work spreads."""
    serial = 1.0 / min(cpus, 1.0)
    return startup * serial + work * fraction * ((1 - parallel) * serial + parallel / cpus)


def samples_for(points, noise: float = 0.0, seed: int = 0, **truth: float) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [Sample(f, c, true_time(f, c, **truth) * math.exp(rng.normal(0.0, noise))) for f, c in points]


# -- quotas and calibration points ----------------------------------------------------------------------------------


def test_quotas_are_quarter_cpus_up_to_the_maximum():
    assert quotas(2) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert quotas(1.1) == [0.25, 0.5, 0.75, 1.0]
    assert quotas(1, step=0.5) == [0.5, 1.0]
    assert quotas()[0] == QUOTA_STEP


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"/sys/fs/cgroup/cpu.max": "150000 100000\n"}, 1.5),
        ({"/sys/fs/cgroup/cpu.max": "max 100000\n"}, None),
        ({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "50000\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_available_cpus_follows_a_cgroup_limit(monkeypatch, files, expected):
    monkeypatch.setattr(planner.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})

    def fake_open(path, *args, **kwargs):
        if path not in files:
            raise FileNotFoundError(path)
        return io.StringIO(files[path])

    monkeypatch.setattr(planner, "open", fake_open, raising=False)
    assert available_cpus() == (4.0 if expected is None else expected)


@pytest.mark.parametrize(
    ("max_cpus", "step", "message"),
    [(0.1, 0.25, r"max_cpus=0.1 is below one quota step \(0.25 CPU\)"), (2, 0, "the quota step must be positive")],
)
def test_quotas_refuse_bad_bounds(max_cpus, step, message):
    with pytest.raises(InvalidInput, match=message.replace("must be positive", "must be a positive number")):
        quotas(max_cpus, step)


def test_calibration_points_cover_both_fractions_one_and_all_cpus_and_a_quota_below_one_core():
    assert calibration_points(2) == [(0.1, 0.5), (0.1, 1.0), (0.25, 1.0), (0.1, 2.0), (0.25, 2.0)]
    assert calibration_points(1) == [(0.1, 1.0), (0.25, 1.0), (0.1, 0.5)]
    assert (0.25, 4.0) in calibration_points(8)
    with pytest.raises(InvalidInput, match=r"two different fractions in \(0, 1\], got \(0.2, 0.2\)"):
        calibration_points(2, fractions=(0.2, 0.2))


# -- the time model -------------------------------------------------------------------------------------------------


def test_fit_recovers_exact_parameters_without_noise():
    model = TimeModel.fit(samples_for(calibration_points(2), startup=1.5, work=30.0, parallel=0.6))
    assert model.startup == pytest.approx(1.5, rel=1e-4)
    assert model.work == pytest.approx(30.0, rel=1e-4)
    assert model.parallel == pytest.approx(0.6, abs=1e-4)
    assert model.n_samples == 5
    assert model.predict(1.5) == pytest.approx(true_time(1.0, 1.5, 1.5, 30.0, 0.6), rel=1e-4)


def test_fit_recovers_parameters_from_noisy_samples():
    points = calibration_points(2) * 4  # each run four times, 3 % noise
    model = TimeModel.fit(samples_for(points, noise=0.03, seed=7, startup=2.0, work=40.0, parallel=0.7))
    assert model.startup == pytest.approx(2.0, rel=0.25)
    assert model.work == pytest.approx(40.0, rel=0.1)
    assert model.parallel == pytest.approx(0.7, abs=0.1)
    assert 0.01 < model.rel_error < 0.06
    # the prediction for the whole data set on 2 CPUs, well outside the calibration fractions
    assert model.predict(2.0) == pytest.approx(true_time(1.0, 2.0, 2.0, 40.0, 0.7), rel=0.1)


def test_upper_bound_widens_with_noise_and_with_extrapolation():
    quiet = TimeModel.fit(samples_for(calibration_points(2), noise=0.005, seed=1))
    noisy = TimeModel.fit(samples_for(calibration_points(2), noise=0.1, seed=1))
    assert noisy.upper(1.0) / noisy.predict(1.0) > quiet.upper(1.0) / quiet.predict(1.0) > 1.0
    # predicting the whole data set is less certain than predicting a calibration fraction
    assert noisy.rel_sd(1.0, fraction=1.0) > noisy.rel_sd(1.0, fraction=0.25)


def test_fit_without_a_run_above_one_cpu_assumes_no_parallel_speedup():
    model = TimeModel.fit(samples_for([(0.1, 1.0), (0.25, 1.0), (0.1, 0.5)], parallel=0.9))
    assert model.parallel == 0.0
    assert model.predict(2.0) == pytest.approx(model.predict(1.0))


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([Sample(0.1, 1, 2.0), Sample(0.25, 1, 3.0)], "at least 3 calibration runs, got 2"),
        ([Sample(0.1, 1, 2.0), Sample(0.1, 2, 1.5), Sample(0.1, 0.5, 4.0)], "all used the fraction 0.1 of the data"),
        ([Sample(0.1, 1, 2.0), Sample(0.25, 1, 0.0), Sample(0.1, 2, 1.0)], r"positive seconds, got \[2.0, 0.0, 1.0\]"),
    ],
)
def test_fit_refuses_runs_it_cannot_use(samples, message):
    with pytest.raises(InvalidInput, match=message):
        TimeModel.fit(samples)


@settings(max_examples=200, deadline=None)
@given(
    startup=st.floats(0.0, 100.0),
    work=st.floats(1e-3, 1e4),
    parallel=st.floats(0.0, 1.0),
    cpus=st.lists(st.floats(0.05, 64.0), min_size=2, max_size=6),
    fraction=st.floats(0.01, 1.0),
)
def test_predict_never_grows_with_more_cpus(startup, work, parallel, cpus, fraction):
    model = TimeModel(startup=startup, work=work, parallel=parallel, rel_error=0.05, n_samples=5)
    times = [model.predict(c, fraction) for c in sorted(cpus)]
    assert all(later <= earlier * (1 + 1e-12) for earlier, later in itertools.pairwise(times))


# -- choosing a quota -----------------------------------------------------------------------------------------------


def test_plan_picks_the_smallest_quota_that_fits():
    calls: list[tuple[float, float]] = []

    def measure(fraction: float, cpus: float) -> float:
        calls.append((fraction, cpus))
        return true_time(fraction, cpus)

    # whole data: 21 s at 1 CPU, 28 s at 0.75 CPUs
    chosen = plan(measure, budget_s=26.0, max_cpus=2)
    assert calls == calibration_points(2)
    assert chosen.cpus == 1.0
    assert chosen.predicted_s == pytest.approx(21.0, rel=1e-4)
    assert chosen.predicted_s < chosen.upper_s <= 26.0
    fits = {row["cpus"]: row["fits"] for row in chosen.candidates}
    assert fits == {0.25: False, 0.5: False, 0.75: False, 1.0: True, 1.25: True, 1.5: True, 1.75: True, 2.0: True}
    # a looser budget lets a quota below one core through
    assert plan_from_samples(chosen.samples, budget_s=40.0, max_cpus=2).cpus == 0.75
    # a tighter one needs the parallel part spread over more cores
    assert plan_from_samples(chosen.samples, budget_s=17.5, max_cpus=2).cpus == 1.5


def test_needed_time_is_the_larger_of_upper_bound_and_margin():
    chosen = plan_from_samples(samples_for(calibration_points(2)), budget_s=100.0, max_cpus=2, margin=0.5)
    for row in chosen.candidates:
        assert row["needed_s"] == pytest.approx(max(row["upper_s"], 1.5 * row["predicted_s"]))
        assert row["fits"] == (row["needed_s"] <= 100.0)


def test_plan_refuses_when_no_quota_fits():
    message = (
        r"no CPU quota up to 2 fits the budget of 5.0 s: the fastest, 2 CPUs, is predicted to take 13 s "
        r"\(upper 15 s, needs 15 s with its headroom\); give a deadline at least 15 s away, more CPUs, or less data"
    )
    with pytest.raises(InvalidInput, match=message):
        plan(true_time, budget_s=5.0, max_cpus=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"budget_s": -1.0}, "positive number of seconds, got -1.0"), ({"budget_s": 10.0, "margin": -0.1}, "margin")],
)
def test_plan_refuses_bad_budget_or_margin(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        plan_from_samples(samples_for(calibration_points(2)), max_cpus=2, **kwargs)


def test_calibration_time_comes_out_of_the_budget_before_a_deadline(monkeypatch):
    clock = [100.0]

    def measure(fraction: float, cpus: float) -> float:
        seconds = true_time(fraction, cpus)
        clock[0] += seconds
        return seconds

    monkeypatch.setattr(planner, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    calibration_s = sum(true_time(f, c) for f, c in calibration_points(2))  # 21.2 s
    # 45 s to the deadline, 21.2 s of them calibrating: 23.8 s are left, enough for 1 CPU (23.1 s needed)
    chosen = plan(measure, budget_s=45.0, max_cpus=2, deadline=NOW)
    assert chosen.calibration_s == pytest.approx(calibration_s)
    assert chosen.budget_s == pytest.approx(45.0 - calibration_s)
    assert chosen.cpus == 1.0
    # without a deadline the budget is the run's own: 0.75 CPUs need 30.8 s, 0.5 CPUs 46.2 s
    assert plan(measure, budget_s=45.0, max_cpus=2).cpus == 0.75
    with pytest.raises(InvalidInput, match=r"calibrating took 21 s of the 15 s before the deadline 2026-12-02T05:00"):
        plan(measure, budget_s=15.0, max_cpus=2, deadline=NOW)


def test_plan_refuses_a_measure_that_returns_no_time():
    with pytest.raises(InvalidInput, match=r"on 0\.1 of the data at 0\.5 CPUs took nan s"):
        plan(lambda fraction, cpus: float("nan"), budget_s=30.0, max_cpus=2)


def test_plan_summary_table_and_description():
    chosen = plan(true_time, budget_s=26.0, max_cpus=2, deadline=NOW)
    summary = json.loads(json.dumps(chosen.summary()))
    assert summary["cpus"] == 1.0 and summary["deadline"] == "2026-12-02T05:00:00+00:00"
    assert summary["model"]["parallel"] == pytest.approx(0.8, abs=1e-4)
    assert len(summary["candidates"]) == 8 and len(summary["samples"]) == 5
    console = Console(file=io.StringIO(), width=100)
    console.print(chosen.table())
    rendered = console.file.getvalue()
    assert "upper (90%)" in rendered and rendered.count("yes") == 5 and rendered.count(" no ") == 3
    text = chosen.describe()
    assert text.startswith("1 CPU: predicted 21 s (±")
    assert "fits the budget of 26 s (deadline 2026-12-02T05:00:00+00:00)" in text
    assert text.endswith("0.75 CPUs would need 31 s: too long.")


# -- history --------------------------------------------------------------------------------------------------------


def test_history_correction_is_a_clipped_median_of_recent_runs():
    assert history_correction([]) == 1.0
    assert history_correction([(10.0, 15.0), (10.0, 14.0), (10.0, 100.0)]) == pytest.approx(1.5)
    assert history_correction([(10.0, 1000.0)]) == 3.0
    assert history_correction([(10.0, 1.0)]) == 0.5
    # only the last five runs count
    assert history_correction([(10.0, 30.0)] * 5 + [(10.0, 10.0)] * 5) == 1.0
    with pytest.raises(InvalidInput, match=r"predicted=10\.0 s and actual=0\.0 s; both must be positive"):
        history_correction([(10.0, 0.0)])


def test_history_shifts_the_choice():
    samples = samples_for(calibration_points(2))
    assert plan_from_samples(samples, budget_s=26.0, max_cpus=2).cpus == 1.0
    # earlier runs took 1.3x the prediction: 1 CPU would now be 27 s, 1.25 CPUs 23 s (25.5 s with the margin)
    slower = plan_from_samples(samples, budget_s=26.0, max_cpus=2, history=[(21.0, 27.3)] * 3)
    assert slower.correction == pytest.approx(1.3)
    assert slower.cpus == 1.25
    assert slower.predicted_s == pytest.approx(1.3 * 17.8)
    assert slower.model_predicted_s == pytest.approx(slower.predicted_s / 1.3)
    # and faster ones free CPUs
    assert plan_from_samples(samples, budget_s=26.0, max_cpus=2, history=[(21.0, 14.7)]).cpus == 0.75


# -- during the run -------------------------------------------------------------------------------------------------


def test_at_risk_projects_the_finish_from_progress():
    chosen = plan(true_time, budget_s=26.0, max_cpus=2)  # 1 CPU, 1 s startup, 21 s predicted
    assert at_risk(chosen, elapsed_s=12.0, done_fraction=0.5) is None  # 12 + 11 = 23 s
    assert at_risk(chosen, elapsed_s=16.0, done_fraction=0.5) == (
        "deadline at risk: 50% done after 16 s, projected finish at 31 s > budget 26 s "
        "(planned 1 CPU, predicted 21 s)"
    )
    # startup is not spread over the steps: 3 s in, 10 % done -> 3 + 2 * 9 = 21 s, on time
    assert at_risk(chosen, elapsed_s=3.0, done_fraction=0.1) is None
    assert at_risk(chosen, elapsed_s=2.0, done_fraction=0.0) is None
    assert at_risk(chosen, elapsed_s=27.0, done_fraction=0.9).startswith("deadline missed: 27 s elapsed, 90% done")
    with pytest.raises(InvalidInput, match=r"done_fraction must be in \[0, 1\], got 1.5"):
        at_risk(chosen, elapsed_s=1.0, done_fraction=1.5)


# -- deadlines ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        ("90s", NOW + timedelta(seconds=90)),
        ("30m", NOW + timedelta(minutes=30)),
        ("2h", NOW + timedelta(hours=2)),
        ("1h30m", NOW + timedelta(hours=1, minutes=30)),
        (" 1h 30m ", NOW + timedelta(hours=1, minutes=30)),
        ("1.5H", NOW + timedelta(hours=1, minutes=30)),
        ("1d", NOW + timedelta(days=1)),
        (3600, NOW + timedelta(hours=1)),
        (90.5, NOW + timedelta(seconds=90.5)),
        ("3600", NOW + timedelta(hours=1)),
        ("2026-12-02T08:00:00+00:00", NOW + timedelta(hours=3)),
        ("2026-12-02T09:00:00+01:00", NOW + timedelta(hours=3)),
        (datetime(2026, 12, 3, tzinfo=UTC), NOW + timedelta(hours=19)),
        ("0 6 * * *", NOW + timedelta(hours=1)),  # the next refresh at 06:00
        ("0 4 * * *", NOW + timedelta(hours=23)),  # 04:00 today has passed: tomorrow's
        ("*/15 * * * *", NOW + timedelta(minutes=15)),
    ],
)
def test_parse_deadline_reads_every_form(deadline, expected):
    assert parse_deadline(deadline, now=NOW) == expected


@pytest.mark.parametrize("deadline", ["soon", "5 parsecs", "1h30", "", "61 * * * *", "h", float("nan"), True, None])
def test_parse_deadline_names_the_accepted_forms(deadline):
    with pytest.raises(InvalidInput, match=r"cannot read the deadline .*: expected a duration \('90s'.* cron"):
        parse_deadline(deadline, now=NOW)


@pytest.mark.parametrize(
    ("duration", "seconds"), [("0s", 0.0), ("90s", 90.0), ("1h30m", 5400.0), ("2d", 172800.0), (12, 12.0), ("7.5", 7.5)]
)
def test_parse_duration(duration, seconds):
    assert parse_duration(duration) == seconds


@pytest.mark.parametrize(
    ("duration", "message"),
    [("soon", r"cannot read the duration 'soon': expected a number of seconds or a duration such as '90s'"),
     (-3, "the duration -3 is negative"), ("inf", "cannot read the duration 'inf'")],
)
def test_parse_duration_refuses_bad_input(duration, message):
    with pytest.raises(InvalidInput, match=message):
        parse_duration(duration)


@pytest.mark.parametrize("deadline", ["2026-12-02T04:00:00+00:00", -5, "0s"])
def test_parse_deadline_refuses_a_deadline_that_has_passed(deadline):
    with pytest.raises(InvalidInput, match=r"has already passed: it is 2026-12-02T0[45]:..:..\+00:00 and now is "
                                           r"2026-12-02T05:00:00\+00:00; give a later time"):
        parse_deadline(deadline, now=NOW)


def test_fit_sees_a_job_that_runs_slower_on_more_threads():
    # a small job whose second thread costs more than it gives: 2 CPUs slower than 1, as gradient boosting on
    # 25,000 rows was here
    truth = TimeModel(startup=0.6, work=1.2, parallel=0.3, rel_error=0.0, n_samples=0, threads_effect=1.5)
    points = calibration_points(2.0)
    model = TimeModel.fit([Sample(f, c, truth.predict(c, f)) for f, c in points])
    assert model.threads_effect == pytest.approx(1.5, rel=0.05)
    assert model.predict(2.0) > model.predict(1.0)
    assert model.predict(2.0) == pytest.approx(truth.predict(2.0), rel=0.02)
    samples = [Sample(f, c, truth.predict(c, f)) for f, c in points]
    chosen = plan_from_samples(samples, budget_s=1.3 * truth.predict(1.0), max_cpus=2.0)
    assert chosen.cpus <= 1.0  # more CPUs would only be slower


def test_fit_sees_a_fixed_part_that_runs_on_several_threads():
    # reading the whole snapshot (Arrow's thread pool) is fixed in the data fraction but faster on 2 threads; the
    # work itself is serial: the plan must not expect the full data to get faster above one CPU
    truth = TimeModel(startup=0.8, work=3.0, parallel=0.0, rel_error=0.0, n_samples=0, threads_effect=-0.8)
    model = TimeModel.fit([Sample(f, c, truth.predict(c, f)) for f, c in calibration_points(2.0)])
    assert model.parallel == pytest.approx(0.0, abs=0.02) and model.threads_effect == pytest.approx(-0.8, abs=0.05)
    assert model.predict(2.0) == pytest.approx(truth.predict(2.0), rel=0.02)
