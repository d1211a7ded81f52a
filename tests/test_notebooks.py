"""The notebooks run top to bottom in their small mode (their committed outputs are a full run)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# 95 s and 78 s even in small mode (`make test --durations`, 2026-11-29), a fifth of the default
# run: in `make test-slow`. Their paths run in the default run through the CLI tests
# (profile/fit/predict/validate, search, distill, run).
SLOW = {"01_profile_predict_validate", "02_search_and_distill"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW
                                  else p for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_small_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("HWDISTILL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("HWDISTILL_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("HWDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HWDISTILL_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "small mode" in text


def test_committed_notebooks_carry_the_outputs_of_a_full_run():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name} is not executed"
        text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
        assert "full mode" in text, f"{path.name}: committed outputs are not from a full run"
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
