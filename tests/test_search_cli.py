"""`hwdistill search` end to end on a tiny space: predicted latency (cheap, inside the
acquisition) x a real accuracy proxy on the real teacher; SIGKILL and --resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIX = Path(__file__).parent / "fixtures"
ARGS = ["--space", str(FIX / "tiny_space.toml"), "--accuracy", "proxy", "--proxy", "cka",
        "--workload", "2,16", "--data-dir", str(FIX / "data"), "--n-initial", "4"]


def hw(*args, cwd):
    return subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                          text=True, timeout=900, cwd=cwd)


SEARCH_TRIALS = "FROM trials WHERE run_id IN (SELECT id FROM runs WHERE kind = 'search')"


def _trials(db: Path) -> list[tuple]:
    """The search's trials (the store also memoises accuracy by candidate, as trials)."""
    with sqlite3.connect(db) as c:
        return c.execute(f'SELECT "index", status {SEARCH_TRIALS} ORDER BY "index"').fetchall()


@pytest.mark.slow   # minutes; the main job's end-to-end test covers the same path
def test_search_cli_front_table_json_png(tmp_path):
    r = hw("search", *ARGS, "--budget", "6", "--store", str(tmp_path / "s.db"), "--out",
           str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pareto front" in r.stdout and "round" in r.stdout
    summary = json.loads((tmp_path / "out" / "front.json").read_text())
    assert summary["budget"]["expensive_evaluations"] == 6
    assert summary["budget"]["predicted_only"]["latency_ms[cpu]"] > 0   # the acquisition's
    names = [o["name"] for o in summary["objectives"]]
    assert names == ["proxy[cka]", "latency_ms[cpu]"]
    assert [o["provenance"] for o in summary["objectives"]] == ["proxy", "predicted"]
    front = summary["front"]
    assert front and all(r["pareto"] for r in front)
    lat = [r["latency_ms[cpu]"] for r in front]
    acc = [r["proxy[cka]"] for r in front]
    assert lat == sorted(lat) and acc == sorted(acc)    # a front: faster is less accurate
    # what each value came with: the latency's method (and its 90% interval, when learned)
    assert all("method" in r["detail"]["latency_ms[cpu]"] for r in front)
    assert (tmp_path / "out" / "front.png").stat().st_size > 10_000


@pytest.mark.slow   # two searches
def test_a_second_search_reads_accuracy_back_from_the_store(tmp_path):
    db = str(tmp_path / "s.db")
    first = hw("search", *ARGS, "--budget", "5", "--store", db, "--out", str(tmp_path / "a"),
               cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "read back" not in first.stdout
    again = hw("search", *ARGS, "--budget", "5", "--store", db, "--out", str(tmp_path / "b"),
               cwd=tmp_path)                    # a new run, same seed: the same candidates
    assert again.returncode == 0, again.stderr[-3000:]
    assert "proxy[cka] of 5 candidates read back from the store" in again.stdout
    a, b = (json.loads((tmp_path / d / "front.json").read_text()) for d in "ab")
    assert a["run_id"] != b["run_id"] and b["budget"]["accuracy_read_from_store"] == 5
    assert [r["proxy[cka]"] for r in a["evaluated"]] == [r["proxy[cka]"] for r in b["evaluated"]]


def test_bad_inputs_are_named(tmp_path):
    r = hw("search", "--target", "tpu-v9", "--budget", "2", cwd=tmp_path)
    assert r.returncode == 2 and "unknown --target 'tpu-v9'" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[dimensions]\nhidden = [64]\n")
    r = hw("search", "--space", str(bad), "--budget", "2", cwd=tmp_path)
    assert r.returncode == 2 and "unknown dimension(s) ['hidden']" in r.stderr
    r = hw("search", "--latency-bound", "upper", "--budget", "2", cwd=tmp_path)
    assert r.returncode == 2 and "give --max-latency-ms too" in r.stderr
    r = hw("search", "--print-space", cwd=tmp_path)
    assert r.returncode == 0 and "[dimensions]" in r.stdout


@pytest.mark.slow
def test_search_cli_sigkill_then_resume(tmp_path):
    db = tmp_path / "s.db"
    cmd = [sys.executable, "-m", "hwdistill", "search", *ARGS, "--budget", "8", "--store",
           str(db), "--out", str(tmp_path / "out")]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if db.exists():
            try:
                done = [t for t in _trials(db) if t[1] == "done"]
            except sqlite3.OperationalError:
                done = []
            if len(done) >= 5:
                break
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = {i: s for i, s in _trials(db)}
    assert sum(s == "done" for s in before.values()) >= 5
    with sqlite3.connect(db) as c:
        run_id = c.execute("SELECT id FROM runs WHERE kind = 'search'").fetchone()[0]
    r = hw("search", *ARGS, "--budget", "8", "--store", str(db), "--resume", run_id,
           "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _trials(db)
    assert [i for i, _ in after] == list(range(8))            # dense: nothing lost
    assert all(s == "done" for _, s in after)
    summary = json.loads((tmp_path / "out" / "front.json").read_text())
    assert summary["budget"]["expensive_evaluations"] == 8
    # finished trials were not evaluated again: their attempts stayed at 1
    with sqlite3.connect(db) as c:
        prov = dict(c.execute(f'SELECT "index", provenance {SEARCH_TRIALS}').fetchall())
    for i, s in before.items():
        if s == "done":
            assert json.loads(prov[i]).get("attempts", 1) == 1
