"""`hwdistill run` (the main job) and `hwdistill report`, as a user runs them, on the tiny space."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from search.pipeline import Pipeline, RunSettings, load_state

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["--space", str(FIXTURES / "tiny_space.toml"), "--workload", "1,16",
        "--profile-archs", "4", "--search-budget", "3", "--measure", "2", "--flash", "1",
        "--flash-steps", "4", "--full-steps", "6", "--dev-pairs", "32"]


def hw(*args, cwd, env=None, **kw):
    e = {**os.environ, "HWDISTILL_CACHE": str(Path(cwd) / "cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                          text=True, cwd=cwd, env=e, timeout=1800, **kw)


def _run_dir(cwd: Path) -> Path:
    runs = [p for p in (cwd / "runs").glob("run-*") if (p / "state.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow   # minutes; notebook 02's small mode runs the pipeline in the default suite
def test_tiny_run_end_to_end_then_resume_is_free_and_report_rerenders(tmp_path):
    r = hw("run", *TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    d = _run_dir(tmp_path)
    state = load_state(d)
    st_ = state["stages"]
    assert all(st_[k]["done"] for k in ("profile", "fit", "search", "measure", "flash", "full",
                                        "report"))
    assert len(st_["search"]["evaluated"]) == 3
    measured = st_["measure"]["measured"]
    assert measured and all(m["measured_ms"] > 0 and m["predicted_ms"] > 0 for m in measured)
    assert st_["measure"]["teacher"]["measured_ms"] > max(m["measured_ms"] for m in measured)
    (full,) = st_["full"]["distilled"]
    assert -1 <= full["full_stsb"] <= 1 and full["steps"] == 6
    assert (d / full["student_dir"] / "config.json").is_file()
    assert 0.8 < st_["flash"]["teacher_stsb"] <= 1.0
    md = (d / "report.md").read_text()
    for needle in ("## Result", "predicted vs measured", "## The search", "proxy"):
        assert needle in md
    for png in ("latency.png", "front.png", "accuracy.png", "proxy_vs_flash.png"):
        assert (d / png).stat().st_size > 5000, png
    assert "<table>" in (d / "report.html").read_text()
    assert "report:" in r.stdout and state["run_id"] in r.stdout
    # the next command a user types finds the model the run fitted
    pr = hw("predict", "--arch", "bert-mini", "--workload", "1,16", cwd=tmp_path)
    assert pr.returncode == 0 and "uncalibrated" not in pr.stdout, pr.stderr[-2000:]

    # the same command again: every stage done earlier, nothing recomputed
    t0 = time.perf_counter()
    again = hw("run", *TINY, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done earlier") == 7
    assert load_state(d)["stages"] == state["stages"]
    assert time.perf_counter() - t0 < 120

    (d / "report.md").unlink()
    rep = hw("report", state["run_id"], cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (d / "report.md").read_text() == md


@pytest.mark.slow
def test_run_sigkilled_in_the_search_resumes_with_nothing_lost(tmp_path):
    args = [*TINY[:7], "--search-budget", "6", *TINY[9:]]
    p = subprocess.Popen([sys.executable, "-m", "hwdistill", "run", *args], cwd=tmp_path,
                         env={**os.environ, "HWDISTILL_CACHE": str(tmp_path / "cache")},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in p.stdout:                        # wait until the search has begun
        seen.append(line)
        if "[3/7] search" in line:
            break
    time.sleep(25)
    p.send_signal(signal.SIGKILL)
    p.wait()
    d = _run_dir(tmp_path)
    before = load_state(d)["stages"]
    assert before["profile"]["done"] and "search" not in before
    r = hw("run", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "profile: done earlier" in r.stdout and "fit: done earlier" in r.stdout
    st_ = load_state(d)["stages"]
    assert len(st_["search"]["evaluated"]) == 6
    from measurements import Store
    with Store(tmp_path / "runs" / "store.db", readonly=True) as s:
        trials = s.trials(st_["search"]["search_run"])
    assert sorted(t.index for t in trials) == list(range(6))     # none lost, none repeated


def test_bad_settings_are_named(tmp_path):
    r = hw("run", "--target", "gpu-a100", cwd=tmp_path)
    assert r.returncode == 2 and "gpu-a100" in r.stderr and "tpu-" in r.stderr
    assert "Traceback" not in r.stderr
    r = hw("run", "--search-budget", "0", cwd=tmp_path)
    assert r.returncode == 2 and "search_budget" in r.stderr


@settings(max_examples=25, deadline=None)
@given(budget=st.floats(allow_nan=True, allow_infinity=False, width=32),
       n=st.integers(-3, 3))
def test_run_settings_validate_every_field(budget, n):
    ok = budget > 0 and n >= 1
    try:
        RunSettings(budget_minutes=budget, search_budget=n)
    except ValueError as e:
        assert not ok
        assert ("budget_minutes" in str(e)) or ("search_budget" in str(e))
    else:
        assert ok


def test_damaged_or_foreign_state_is_a_clear_error(tmp_path):
    s = RunSettings(search_budget=3)
    d = tmp_path / "runs" / s.run_id()
    d.mkdir(parents=True)
    (d / "state.json").write_text("{ truncated")
    with pytest.raises(ValueError, match="damaged.*re-run"):
        Pipeline(s, tmp_path / "runs")
    (d / "state.json").write_text(json.dumps({"settings": {"seed": 9}, "stages": {}}))
    with pytest.raises(ValueError, match="other settings"):
        Pipeline(s, tmp_path / "runs")
    r = hw("report", "run-nothere", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "run-nothere" in r.stderr and s.run_id() in r.stderr


def test_same_settings_same_run_id():
    assert RunSettings().run_id() == RunSettings().run_id()
    assert RunSettings(seed=1).run_id() != RunSettings().run_id()
