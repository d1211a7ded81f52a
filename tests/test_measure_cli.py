import json
import subprocess
import sys

from measurements import Store


def test_measure_end_to_end_on_tiny_preset(tmp_path):
    db = tmp_path / "m.db"
    arch = json.dumps({"num_layers": 1, "hidden_size": 32, "num_heads": 2, "ffn_size": 64})
    r = subprocess.run([sys.executable, "-m", "hwdistill", "measure", "--arch", arch,
                        "--workload", "2,16", "--workload", "1,8", "--budget-s", "1",
                        "--store", str(db)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "median_ms" in r.stdout and "2x16 float32" in r.stdout
    with Store(db, readonly=True) as s:
        recs = s.latencies()
    assert len(recs) == 2
    for rec in recs:
        assert rec.latency_ms_median > 0 and rec.latency_ms_iqr >= 0 and rec.compile_s > 0
        assert rec.arch["hidden_size"] == 32 and rec.extra["params"] > 0


def test_measure_rejects_bad_arch_and_workload(tmp_path):
    for args, msg in [(["--arch", "bert-huge"], "neither a preset"),
                      (["--arch", "bert-tiny", "--workload", "8"], "BATCH,SEQ_LEN"),
                      (["--arch", "bert-tiny", "--workload", "1,4096"], "max_positions")]:
        r = subprocess.run([sys.executable, "-m", "hwdistill", "measure", *args,
                            "--store", str(tmp_path / "x.db")], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
