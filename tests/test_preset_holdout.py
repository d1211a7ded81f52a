"""benchmarks/preset_holdout.py on a slice of the committed profile store (real timings of
its machine): each profiled preset held out, the error split into its parts."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from measurements import Store

ROOT = Path(__file__).parents[1]
COMMITTED = ROOT / "benchmarks" / "store" / "cpu.db"


@pytest.mark.slow    # a minute: a subprocess that fits, compiles and predicts
def test_presets_held_out_and_their_error_split(tmp_path):
    with Store(COMMITTED, readonly=True) as src:
        fp = src.fingerprints()[0]
        lats = [r for r in src.latencies(fp.id) if r.tag == "profile"]
        tiny = [r for r in lats if r.arch["hidden_size"] == 128 and r.arch["num_layers"] == 2
                and r.arch["ffn_size"] == 512]                     # bert-tiny, both workloads
        keep = [r for r in lats if r not in tiny][:30] + tiny
        ops = [o for r in keep for o in src.op_timings(fp.id, program=r.extra["program"])]
    with Store(tmp_path / "s.db") as dst:
        dst.register_fingerprint(fp)
        dst.put_op_timings(ops)
        dst.put_latencies(keep)
    env = {**os.environ, "HWDISTILL_RESULTS": str(tmp_path / "results"),
           "HWDISTILL_CACHE": "none"}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "preset_holdout.py"),
                          "--store", str(tmp_path / "s.db")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads((tmp_path / "results" / "preset_holdout.json").read_text())
    assert res["fingerprint"] == fp.id          # another machine's store, analysed here
    rows = res["programs"]
    assert {(r["preset"], r["workload"]) for r in rows} == {
        ("bert-tiny", "1x128 float32"), ("bert-tiny", "8x128 float32")}
    for r in rows:
        e = r["log_error"]
        assert all(abs(v) < 2 for v in e.values())       # finite, and not absurd
        assert abs(e["total"] - math.log(r["predicted_ms"] / r["label_ms"])) < 1e-9
    assert set(res["median_log_error_by_workload"]) == {"1x128 float32", "8x128 float32"}
