"""Long checks: `make test-slow`."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwdistill", "demo", "--workdir",
                        str(tmp_path / "d"), "--archs", "6"], capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    v = json.loads((tmp_path / "d" / "validation" / "validation.json").read_text())
    assert v["n"] == 12 and v["spearman"] > 0.5
    assert "calibrated" in r.stdout
