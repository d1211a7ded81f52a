"""Intervals calibrated on held-out validations: real profiled programs of the committed store
that the test model was not trained on stand in as a store's earlier validations."""

import math

import numpy as np
import pytest

from measurements import Store
from perfmodel import Predictor
from perfmodel.heldout_intervals import (VALIDATE_TAG, calibrate, held_out_table,
                                         program_identity, validation_records)
from perfmodel.intervals import conformal_bounds

from conftest import COMMITTED_STORE

W1 = {"batch_size": 1, "dtype": "float32", "seq_len": 128}
W8 = {"batch_size": 8, "dtype": "float32", "seq_len": 128}


@pytest.fixture(scope="module")
def validated_store(real_store, tmp_path_factory):
    """The 48-program store plus other real programs recorded as validations (19 at 8x128,
    enough for that workload's own bounds; 5 at 1x128, too few), and one validation of a
    program the model trained on (which must not calibrate)."""
    import dataclasses
    import shutil
    path, fp_id = real_store
    out = tmp_path_factory.mktemp("validated") / "s.db"
    with Store(path, readonly=True) as src:
        trained = src.latencies(fp_id)
    seen = {program_identity(r.arch, r.workload) for r in trained}
    with Store(COMMITTED_STORE, readonly=True) as src:
        others = [r for r in src.latencies(fp_id)
                  if r.tag == "profile" and program_identity(r.arch, r.workload) not in seen]
    val = [r for w, n in ((W1, 5), (W8, 19))
           for r in [r for r in others if dict(r.workload) == w][:n]]
    val = [dataclasses.replace(r, tag=VALIDATE_TAG) for r in val]
    val.append(dataclasses.replace(trained[0], tag=VALIDATE_TAG))
    shutil.copy(path, out)                    # the profile (op timings and labels) ...
    with Store(out) as dst:
        dst.put_latencies(val)                # ... and the validations
    return out, fp_id, val


def test_validations_of_trained_or_excluded_programs_do_not_calibrate(validated_store):
    path, fp_id, val = validated_store
    with Store(path, readonly=True) as st:
        recs = validation_records(st, fp_id)
        assert len(recs) == 24               # the validation of a trained program is left out
        skip = {program_identity(r.arch, r.workload) for r in recs[:5]}
        assert len(validation_records(st, fp_id, exclude=skip)) == 19


@pytest.mark.slow      # 24 cold op-list compiles (~1 min here); the table's logic is tested below
def test_calibrated_on_held_out_programs_by_workload(validated_store, real_model):
    path, fp_id, _ = validated_store
    with Store(path, readonly=True) as st:
        recs = validation_records(st, fp_id)
    pred = Predictor("cpu", real_model)
    seen = []                                   # progress: wraps the records as predicted
    table = calibrate(real_model, recs, pred, progress=lambda rs: (seen.append(r) or r for r in rs))
    assert seen == recs
    own = real_model.summary["interval"]
    assert table["source"]["kind"] == "held-out" and table["source"]["programs"] == 24
    assert table["out_of_fold"] == own
    assert table["by_workload_source"] == {"1x128 float32": "out-of-fold",    # 5: too few
                                           "8x128 float32": "held-out"}
    assert table["by_workload"]["1x128 float32"] == own["by_workload"]["1x128 float32"]
    # the bounds are the conformal order statistics of the 19 held-out ratios at 8x128
    r8 = [math.log(r.latency_ms_median / pred.predict(*_pair(r)).latency_ms)
          for r in recs if dict(r.workload) == W8]
    assert table["by_workload"]["8x128 float32"] == pytest.approx(conformal_bounds(r8))
    assert table["programs"] == {"1x128 float32": 5, "8x128 float32": 19}
    # calibrating a calibrated model starts again from its own out-of-fold bounds
    cal = dict(real_model.summary, interval=table)
    again = calibrate(type("M", (), {"summary": cal})(), recs, pred)
    assert again["out_of_fold"] == own and again["by_workload"] == table["by_workload"]
    assert calibrate(real_model, recs[:18], pred) is None       # 90% needs 19


@pytest.mark.slow      # a fit and 24 cold op-list compiles, in a subprocess
def test_hwdistill_fit_calibrates_on_the_store_s_validations(validated_store, tmp_path):
    import json
    import subprocess
    import sys
    path, fp_id, _ = validated_store
    r = subprocess.run([sys.executable, "-m", "hwdistill", "fit", "--store", str(path),
                        "--fingerprint", fp_id, "--out", str(tmp_path / "m")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "calibrated on 24 held-out programs" in r.stdout
    assert "fitting the op model" in r.stderr and "intervals: predicting held-out" in r.stderr
    iv = json.loads((tmp_path / "m" / "meta.json").read_text())["summary"]["interval"]
    assert iv["source"]["kind"] == "held-out"
    assert iv["by_workload_source"] == {"1x128 float32": "out-of-fold",
                                        "8x128 float32": "held-out"}


def test_a_workload_with_too_few_keeps_its_own_bounds():
    own = {"level": 0.9, "pooled": [-0.3, 0.3],
           "by_workload": {"1x128 float32": [-0.25, 0.25], "4x64 float32": [-0.2, 0.2]}}
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(0, 0.02, 30), rng.normal(0, 0.05, 5)])
    t = held_out_table(own, r, ["1x128 float32"] * 30 + ["2x384 float32"] * 5)
    assert t["by_workload_source"] == {"1x128 float32": "held-out",
                                       "4x64 float32": "out-of-fold"}
    assert t["by_workload"]["4x64 float32"] == [-0.2, 0.2]
    lo, hi = t["by_workload"]["1x128 float32"]
    assert -0.1 < lo < 0 < hi < 0.1                     # narrower than its own +-0.25
    assert t["pooled"] == list(conformal_bounds(r))     # 2x384: the held-out pooled bounds
    assert held_out_table(own, r[:10], ["a"] * 10) is None


def _pair(r):
    from distill import StudentConfig, Workload
    return StudentConfig.from_dict(r.arch), Workload(**r.workload)


def test_an_earlier_benchmark_run_is_recorded_once_and_only_in_its_machine_s_store(
        real_store, tmp_path, capsys):
    """benchmarks/record_validation.py: a latency_predictor results file's measurements become
    validation records of its machine, dated as the run; twice records nothing more."""
    import json
    import shutil
    import sys
    from pathlib import Path
    from distill import Workload
    from measurements.errors import InputError
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from record_validation import main
    path, fp_id = real_store
    store = tmp_path / "s.db"
    shutil.copy(path, store)
    with Store(store, readonly=True) as st:
        recs = st.latencies(fp_id)[:3]
    res = {"machine": {"fingerprint": fp_id, "date": "2026-11-28T23:11:21Z"},
           "command": "python benchmarks/latency_predictor.py --archs 50",
           "measurement": {"drift_corrected": True},
           "per_program": [{"arch": dict(r.arch), "workload": str(Workload(**r.workload)),
                            "measured_ms": r.latency_ms_median * 0.9,
                            "rounds_ms": [r.latency_ms_median * f for f in (0.85, 0.9, 0.95)],
                            "uncorrected_ms": r.latency_ms_median} for r in recs]}
    (tmp_path / "lp.json").write_text(json.dumps(res))
    assert main([str(tmp_path / "lp.json"), "--store", str(store)]) == 0
    assert main([str(tmp_path / "lp.json"), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "3 of 3" in out and "0 of 3" in out
    with Store(store, readonly=True) as st:
        val = [r for r in st.latencies(fp_id) if r.tag == VALIDATE_TAG]
        assert len(val) == 3 and len([r for r in st.runs() if r["kind"] == "validate"]) == 1
    assert val[0].extra["source"].endswith("lp.json") and val[0].extra["drift_corrected"]
    assert val[0].created_at == 1795907481.0             # the run's date, not today's
    res["machine"]["fingerprint"] = "0123456789ab"
    (tmp_path / "other.json").write_text(json.dumps(res))
    with pytest.raises(InputError, match="0123456789ab"):
        main([str(tmp_path / "other.json"), "--store", str(store)])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="not a latency_predictor results file"):
        main([str(tmp_path / "bad.json"), "--store", str(store)])


def test_workloads_pooled_on_a_common_scale_cover_the_level_not_more():
    """Six workloads of 58 held-out programs each, errors of different spread and bias: the
    normalised bounds cover new programs about 90% of the time, where per-workload order
    statistics of 58 (what a Mondrian table does) cover about 93%."""
    from perfmodel.intervals import interval_table
    rng = np.random.default_rng(3)
    spread = {"1x128": (0.05, 0.12), "8x128": (0.0, 0.05), "2x384": (-0.04, 0.08),
              "16x96": (0.02, 0.06), "64x16": (0.0, 0.07), "1x512": (-0.06, 0.09)}
    ours, mondrian = [], []
    for _ in range(200):
        r = np.concatenate([rng.normal(m, s, 58) for m, s in spread.values()])
        wl = [w for w in spread for _ in range(58)]
        t, m = held_out_table(None, r, wl), interval_table(r, wl)
        for w, (mu, s) in spread.items():
            new = rng.normal(mu, s, 100)
            for tab, out in ((t, ours), (m, mondrian)):
                lo, hi = tab["by_workload"][w]
                out.append(np.mean((new >= lo) & (new <= hi)))
    assert 0.885 <= np.mean(ours) <= 0.915, np.mean(ours)
    assert np.mean(mondrian) > 0.92, np.mean(mondrian)


def test_intervals_calibrated_on_one_run_and_scored_on_another(tmp_path, monkeypatch, capsys):
    """benchmarks/interval_cross_runs.py: a run whose errors are twice another's over-covers the
    other when it calibrates, under-covers when calibrated on it; pooled, in between."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    from interval_cross_runs import main
    rng = np.random.default_rng(5)

    def run(name, sd, seed_off):
        pp = [{"arch": {"num_layers": 1 + i % 8, "hidden_size": 64 * (1 + i // 8),
                        "tag": seed_off}, "workload": w, "preset": None,
               "measured_ms": 10.0 * (1 + i), "learned_op_model":
                   10.0 * (1 + i) * float(np.exp(rng.normal(0, sd)))}
              for i in range(60) for w in ("1x128 float32", "8x128 float32")]
        res = {"machine": {"date": "2026-11-30T00:00:00Z"}, "train": {"cv": {"cv_e2e_mape": 0.06}},
               "per_program": pp}
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
        return str(tmp_path / f"{name}.json")

    noisy, quiet = run("noisy", 0.10, 1), run("quiet", 0.05, 2)
    monkeypatch.setenv("HWDISTILL_RESULTS", str(tmp_path / "out"))
    assert main([noisy, quiet, "--halvings", "4"]) == 0
    out = json.loads((tmp_path / "out" / "interval_cross_runs.json").read_text())
    one = out["calibrated_on_one_run"]
    assert one["noisy -> quiet"]["coverage"] > 0.97 and one["quiet -> noisy"]["coverage"] < 0.8
    assert one["noisy -> quiet"]["test_programs"] == 120
    pooled = out["pooled_two_fold_by_architecture"]["mean"]
    assert one["quiet -> noisy"]["coverage"] < pooled < one["noisy -> quiet"]["coverage"]
    assert "covers" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SystemExit, match="not a latency_predictor or latency_rescore"):
        main([noisy, str(tmp_path / "bad.json")])
