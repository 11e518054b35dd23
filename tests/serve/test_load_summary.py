"""The load test's summary, computed by hand: a p90 reported as p99, or a median as the mean, must fail here."""

from __future__ import annotations

import pytest

from aiforge.serve.sizing.load import _Run


def _summary(latencies_s: list[float], errors: dict[str, int], *, measured_s: float, asked_s: float):
    run = _Run("http://127.0.0.1:1/x", "POST", b"{}", {}, timeout_s=1.0)
    run.latencies.extend(latencies_s)
    run.errors.update(errors)
    run.measure_start, run.last_done = 100.0, 100.0 + measured_s
    return run.result(concurrency=4, rate=None, duration_s=asked_s)


def test_percentiles_max_and_mean_of_a_known_sample() -> None:
    # 100 latencies of 1, 2, ..., 100 ms: the linear-interpolation percentiles are worked out by hand
    #   p50 at rank 0.50 * 99 = 49.5  -> between 50 and 51 ms -> 50.5
    #   p90 at rank 0.90 * 99 = 89.1  -> 90 + 0.1          -> 90.1
    #   p99 at rank 0.99 * 99 = 98.01 -> 99 + 0.01         -> 99.01
    result = _summary([i / 1000 for i in range(1, 101)], {}, measured_s=2.0, asked_s=2.0)
    assert result.latency_ms == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01, "max": 100.0, "mean": 50.5})


def test_a_skewed_sample_tells_the_mean_from_the_median() -> None:
    # nine answers of 10 ms and one of 1,010 ms: median 10, mean (90 + 1010) / 10 = 110, p90 = 10 + 0.1 * 1000
    result = _summary([0.010] * 9 + [1.010], {}, measured_s=1.0, asked_s=1.0)
    assert result.latency_ms["p50"] == pytest.approx(10.0)
    assert result.latency_ms["mean"] == pytest.approx(110.0)
    assert result.latency_ms["p90"] == pytest.approx(110.0)
    assert result.latency_ms["p99"] == pytest.approx(10.0 + 0.91 * 1000)
    assert result.latency_ms["max"] == pytest.approx(1010.0)


def test_counts_rates_and_duration() -> None:
    # 6 answers and 4 errors in a run that took 3 s though 2 s were asked: throughput over the 3 s measured
    result = _summary([0.001] * 6, {"timeout": 3, "connection": 1}, measured_s=3.0, asked_s=2.0)
    assert (result.requests, result.ok, result.duration_s) == (10, 6, 3.0)
    assert result.throughput_rps == pytest.approx(2.0)
    assert result.error_rate == pytest.approx(0.4)
    assert list(result.errors.items()) == [("timeout", 3), ("connection", 1)]  # in the order of ERROR_KINDS
    # a run shorter than asked reports the asked duration (never less)
    assert _summary([0.001], {}, measured_s=0.5, asked_s=2.0).duration_s == 2.0


def test_no_success_has_no_latencies() -> None:
    result = _summary([], {"connection": 5}, measured_s=1.0, asked_s=1.0)
    assert result.latency_ms == dict.fromkeys(("p50", "p90", "p99", "max", "mean"))
    assert (result.ok, result.throughput_rps, result.error_rate) == (0, 0.0, 1.0)
