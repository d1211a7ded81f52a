import time

import jax
import jax.numpy as jnp
import pytest

import numpy as np

from measurements import detect, time_callable, time_paired


def test_sleep_median_within_stated_spread():
    d = 0.004
    r = time_callable(lambda: time.sleep(d), warmup=1, min_runs=15, budget_s=3)
    assert r.ci_low_s <= r.median_s <= r.ci_high_s
    assert r.p10_s <= r.median_s <= r.p90_s
    # sleep never returns early; the true duration lies at or just below the measured spread
    assert d <= r.median_s < d + 0.003
    assert r.n_runs + r.n_rejected == len(r.samples_s) >= 15


def test_jitted_compute_reports_compile_apart():
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum())
    x = jnp.ones((256, 256))
    r = time_callable(f, x, min_runs=9, budget_s=3)
    assert r.compile_s > 0 and r.first_call_s > 0
    assert r.ci_low_s <= r.median_s <= r.ci_high_s
    assert r.iqr_s >= 0 and r.median_s > 0
    assert "ms" in str(r) and "IQR" in str(r)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_runs"):
        time_callable(lambda: None, min_runs=1)
    with pytest.raises(ValueError, match="min_runs"):
        time_paired(lambda: None, (), lambda: None, (), min_runs=2)


def test_paired_timing_alternates_and_gives_the_ratio():
    calls = []
    prog = lambda: (calls.append("p"), time.sleep(0.004))  # noqa: E731
    ref = lambda: (calls.append("r"), time.sleep(0.002))   # noqa: E731
    tp, tr = time_paired(prog, (), ref, (), budget_s=0.2, min_runs=6, warmup=1)
    assert len(tp) == len(tr) >= 6
    assert calls[:2] == ["r", "p"] and calls[2:] == ["r", "p"] * len(tp)
    assert (tp >= 0.004).all() and (tr >= 0.002).all()
    assert 1.3 < np.median(tp) / np.median(tr) < 2.1   # sleep overshoots a little, alike


def test_detect_fingerprint_of_this_process():
    fp = detect("cpu")
    assert fp.platform == "cpu" and fp.cpu_cores >= 1 and fp.jax_version
