"""Long checks: `make test-slow`."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_main_job_on_embedded_defaults(tmp_path):
    """What `make demo` runs, from an empty folder: the whole pipeline within its budget."""
    r = subprocess.run([sys.executable, "-m", "hwdistill", "run"], capture_output=True,
                       text=True, timeout=3600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (state_path,) = (tmp_path / "runs").glob("run-*/state.json")
    state = json.loads(state_path.read_text())
    stages = state["stages"]
    assert all(stages[k]["done"] for k in stages)
    assert len(stages["search"]["evaluated"]) == state["settings"]["search_budget"]
    (best,) = stages["full"]["distilled"]
    assert best["full_stsb"] > 0.3                    # a trained student, not noise
    assert (state_path.parent / "report.html").is_file()
