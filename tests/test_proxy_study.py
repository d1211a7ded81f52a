"""benchmarks/proxy_study.py on 3 tiny students with a few steps, on the real teacher and the
fixture data: SIGKILLed in the middle of the first student's proxies, resumed without
recomputing those already reported; a further run reuses every stored result; a repass
recomputes two proxies for every student into a supplementary run the analysis prefers."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from measurements import Store

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

    # a repass: grad_norm and snip again (from one gradient) for the 3 finished students,
    # stored as a run of its own; the analysis takes them, the distillations are not repeated
    rp = subprocess.run(args + ["--repass", "grad_norm,snip"], capture_output=True, text=True,
                        timeout=600, cwd=tmp_path)
    assert rp.returncode == 0, rp.stderr[-3000:]
    assert rp.stdout.count("[repass ") == 3 and "full: STS-B" not in rp.stdout
    assert "synflow" not in rp.stdout.split("students;")[0]
    after = json.loads((tmp_path / "results" / "proxy_study.json").read_text())
    (rid, n), = after["repasses"].items()
    assert n == 3 and rid.startswith(after["run_id"] + "-repass-")
    for name in ("grad_norm", "snip"):                # same values (same seed, same batches)
        assert after["proxies"][name]["spearman"] == pytest.approx(
            out["proxies"][name]["spearman"], nan_ok=True)
    with Store(tmp_path / "study.db") as store:
        first = {t.index: t.provenance["proxies"] for t in store.trials(after["run_id"])}
        for t in store.trials(rid):
            assert t.status == "done" and set(t.provenance["proxies"]) == {"grad_norm", "snip"}
            g, s = t.provenance["proxies"]["grad_norm"], t.provenance["proxies"]["snip"]
            assert g["cost_s"] == s["cost_s"]         # half of one joint gradient each
            assert g["value"] == pytest.approx(first[t.index]["grad_norm"]["value"], rel=1e-4)
    again = subprocess.run(args + ["--repass", "grad_norm,snip"], capture_output=True,
                           text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0 and "[repass " not in again.stdout
