import json
import subprocess
import sys

from measurements import Store, Trial
from helpers_store import lat


def hw(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def test_help_lists_every_command():
    out = hw("--help").stdout
    for cmd in ("profile", "fit", "predict", "validate", "search", "distill", "evaluate",
                "report", "measure", "store", "run"):
        assert cmd in out


def test_store_info_ls_export(tmp_path, fp):
    db = tmp_path / "s.db"
    with Store(db) as s:
        s.register_fingerprint(fp)
        s.put_latencies([lat(fp.id, i) for i in range(3)])
    info = json.loads(hw("store", "--store", str(db), "info").stdout)
    assert info["fingerprints"][fp.id]["latencies"] == 3
    assert "(3 of 3 rows)" in hw("store", "--store", str(db), "ls", "latencies").stdout
    r = hw("store", "--store", str(db), "export", "latencies", str(tmp_path / "x.json"))
    assert r.returncode == 0 and len(json.loads((tmp_path / "x.json").read_text())) == 3
    # options may follow the action, as users type them
    after = json.loads(hw("store", "info", "--store", str(db)).stdout)
    assert after == info
    assert "(3 of 3 rows)" in hw("store", "ls", "latencies", "--store", str(db)).stdout


def test_store_import_moves_trials_forward(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path, status in ((a, "running"), (b, "done")):
        with Store(path) as s:
            s.put_trials([Trial(run_id="r", index=0, x=[0.5], source="initial")])
            s.update_trial("r", 0, status=status)
    r = hw("store", "--store", str(a), "import", str(b))
    assert r.returncode == 0 and "trials=0" in r.stdout and "trials moved forward: 1" in r.stdout
    assert "done" in hw("store", "--store", str(a), "ls", "trials").stdout


def test_missing_store_is_a_clear_error(tmp_path):
    r = hw("store", "--store", str(tmp_path / "nope.db"), "info")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_every_command_help_renders():
    """argparse formats help strings with %: a stray % in one breaks that command's --help."""
    import argparse

    from hwdistill.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage:"), name
