"""benchmarks/proxy_study.py on 3 tiny students with a few steps, on the real teacher and the
fixture data: SIGKILLed in the middle of the first student's proxies, resumed without
recomputing those already reported; a further run reuses every stored result."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FIX = Path(__file__).parent / "fixtures"


@pytest.mark.slow
def test_proxy_study_tiny_then_resumed(tmp_path):
    args = [sys.executable, str(ROOT / "benchmarks" / "proxy_study.py"), "--archs", "2",
            "--derived", "1", "--steps", "3", "--flash", "2", "--space",
            str(FIX / "tiny_space.toml"), "--data-dir", str(FIX / "data"), "--sst2-train", "100",
            "--store", str(tmp_path / "study.db"), "--workdir", str(tmp_path / "work"),
            "--results", str(tmp_path / "results"), "--no-latency"]
    # killed once student 1's fourth proxy is reported, before its flash distillation
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         cwd=tmp_path)
    for line in p.stdout:
        if line.strip().startswith("snip"):
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    r = subprocess.run(args, capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    first, rest = r.stdout.split("[2/3]", 1)
    assert "[1/3]" in first and "flash_2" in first          # resumed: the rest computed ...
    for name in ("params", "flops", "grad_norm", "snip"):  # ... and the reported ones not again
        assert f"    {name} " not in first
    assert r.stdout.count("full: STS-B") == 3
    out = json.loads((tmp_path / "results" / "proxy_study.json").read_text())
    assert out["students"] == 3
    assert {"cka", "synflow", "flash_2", "stsb_init", "params_m"} <= set(out["proxies"])
    assert any(s["candidate"].endswith("(derived)") for s in out["students_detail"])
    for row in out["proxies"].values():
        assert -1 <= row["spearman"] <= 1 or row["spearman"] != row["spearman"]  # nan allowed
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "full: STS-B" not in again.stdout and "[1/3]" not in again.stdout
    assert (tmp_path / "results" / "proxy_study.png").stat().st_size > 10_000
