"""profile -> fit -> predict -> validate through the CLI, on a shrunk configuration."""

import json
import subprocess
import sys

import pytest


def hw(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                       text=True, timeout=900, cwd=cwd)
    return r


@pytest.mark.slow   # minutes; the main job's end-to-end test covers the same path
def test_profile_fit_predict_validate(tmp_path):
    db = str(tmp_path / "s.db")
    common = ["--store", db]
    prof = ["profile", "--archs", "5", "--workload", "1,16", "--runs", "3", "--budget-s", "0.2",
            "--reference", "bert-tiny@1,16", *common]
    r = hw(*prof, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "profiled 6 program(s), skipped 0" in r.stdout      # the reference first, then 5
    r = hw(*prof, cwd=tmp_path)  # resumable: everything is skipped
    assert "profiled 0 program(s), skipped 6" in r.stdout
    r = hw("store", "export", "latencies", str(tmp_path / "lat.json"), "--store", db,
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "lat.json").read_text().count("drift_factor") == 5  # all but the reference
    r = hw("fit", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "model written to" in r.stdout
    r = hw("predict", "--arch", "bert-tiny", "--workload", "1,16", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["status"] == "calibrated" and row["latency_ms"] > 0
    assert row["method"] == "learned"                       # no recalibration in this store
    r = hw("recalibrate", "--workload", "1,16", "--budget-s", "0.2", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "recalibrated" in r.stdout and "bert-mini" in r.stdout
    r = hw("predict", "--arch", "bert-tiny", "--workload", "1,16", "--json", *common, cwd=tmp_path)
    again = json.loads(r.stdout.strip().splitlines()[-1])
    assert again["method"] == "learned+recalibrated" and "recalibrated" in r.stderr
    r = hw("predict", "--arch", "bert-tiny", "--workload", "1,16", "--json", "--no-recalibration",
           *common, cwd=tmp_path)
    assert json.loads(r.stdout.strip().splitlines()[-1])["latency_ms"] == row["latency_ms"]
    r = hw("validate", "--archs", "2", "--workload", "1,16", "--rounds", "2", "--budget-s",
           "0.2", "--out", str(tmp_path / "v"), *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    v = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert v["n"] == 2 and 0 <= v["within_10pct"] <= 1 and "noise_rounds_within_10pct" in v
    assert "within_10pct_over_repeatability" in v
    # profiled minutes ago (the date can differ only across midnight: tested in test_perfmodel)
    assert isinstance(v["another_day_than_profiling"], bool) and 0 <= v["hours_after_profiling"] < 1
    assert set(v["before_recalibration"]) == {"mape", "within_10pct", "spearman"}
    assert "interval_90_coverage" not in v        # 5 profiled programs: too few for intervals
    assert (tmp_path / "v" / "predicted_vs_measured.png").stat().st_size > 1000
    # drift-corrected against a reference program timed run by run beside each one
    r = hw("validate", "--archs", "2", "--workload", "1,16", "--rounds", "2", "--budget-s",
           "0.2", "--reference", "bert-tiny@1,16", "--out", str(tmp_path / "v2"), *common,
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    v = json.loads((tmp_path / "v2" / "validation.json").read_text())
    assert v["reference"] == "bert-tiny@1,16" and v["n"] == 2
    assert 0 <= v["noise_uncorrected_rounds_within_10pct"] <= 1
    # the recalibration above timed its anchors alone (today's speed): not mixed with
    # measurements at the speed of profiling; one timed beside the reference is applied
    assert "not applied" in r.stderr and "recalibration" not in v
    r = hw("recalibrate", "--workload", "1,16", "--budget-s", "0.2", "--rounds", "2",
           "--reference", "bert-tiny@1,16", *common, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "timed beside bert-tiny@1x16" in r.stdout and "speed when profiled" in r.stdout
    r = hw("validate", "--archs", "2", "--workload", "1,16", "--rounds", "2", "--budget-s",
           "0.2", "--reference", "bert-tiny@1,16", "--out", str(tmp_path / "v4"), *common,
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    v = json.loads((tmp_path / "v4" / "validation.json").read_text())
    assert "timed beside" in v["recalibration"] and "mape" in v["before_recalibration"]
    r = hw("validate", "--reference", "bert-tiny", "--out", str(tmp_path / "v3"), *common,
           cwd=tmp_path)
    assert r.returncode == 2 and "ARCH@WORKLOAD" in r.stderr


def test_predict_errors(tmp_path):
    r = hw("predict", "--arch", "bert-tiny", "--target", "tpu-v9", cwd=tmp_path)
    assert r.returncode == 2 and "tpu-v9" in r.stderr
    r = hw("predict", "--arch", "bert-tiny", cwd=tmp_path)  # no model fitted here
    assert r.returncode == 2 and "hwdistill profile" in r.stderr
