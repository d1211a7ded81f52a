"""`hwdistill distill` then `hwdistill evaluate` on the shrunk fixture data."""

import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "fixtures" / "data"


def hw(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                          text=True, timeout=900, env=env)


def test_distill_then_evaluate(tmp_path):
    arch = json.dumps({"num_layers": 1, "hidden_size": 32, "num_heads": 2, "ffn_size": 64})
    out = tmp_path / "student"
    cache = tmp_path / "xla-cache"
    # cache every compiled program, however quick (the default keeps those over 1 s)
    env = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    r = hw("distill", "--arch", arch, "--steps", "4", "--batch-size", "8", "--eval-every", "2",
           "--data-dir", str(DATA), "--out", str(out), "--compile-cache", str(cache), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert any(p.name.startswith("jit__train_step") for p in cache.iterdir())
    summary = json.loads((out / "distill_summary.json").read_text())
    assert summary["steps"] == 4 and len(summary["history"]) == 2
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    r = hw("evaluate", "--model", str(out), "--task", "stsb", "--task", "sst2",
           "--data-dir", str(DATA), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout[r.stdout.index("{"):])
    assert -1 <= res["stsb"]["spearman"] <= 1 and 0 <= res["sst2"]["accuracy"] <= 1


def test_missing_data_dir_is_a_clear_error(tmp_path):
    r = hw("evaluate", "--task", "stsb", "--data-dir", str(tmp_path / "none"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "--data-dir" in r.stderr
    assert "Traceback" not in r.stderr
