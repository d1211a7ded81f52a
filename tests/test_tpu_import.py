"""A real TPU v6e capture through the command line, as a TPU user runs it: `hwdistill store
import CAPTURE.xplane.pb`, `hwdistill fit --target tpu-v6e`, `hwdistill predict --target
tpu-v6e` (calibrated). Only committed fixtures are read."""

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwdistill.cli import main
from measurements import Store

FIX = Path(__file__).parent / "fixtures"
CAPTURE = FIX / "tpu_inference_2.xplane.pb"
RAW = CAPTURE.read_bytes()
# a small student, compiled ahead of time for one v6e chip (~2 s here)
ARCH = json.dumps({"num_layers": 2, "hidden_size": 64, "num_heads": 4, "ffn_size": 128,
                   "vocab_size": 1000})

CPU_PROFILE = """
import sys, jax, jax.numpy as jnp
with jax.profiler.trace(sys.argv[1]):
    jax.block_until_ready(jax.jit(lambda x: x @ x)(jnp.ones((32, 32))))
"""


def hw(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A user's working directory: models and op-list cache land under it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWDISTILL_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HWDISTILL_CACHE", str(tmp_path / "cache"))
    return tmp_path


def dump(db: Path) -> dict:
    """Every row of every table, for 'nothing changed' checks."""
    with Store(db, readonly=True) as s:
        from measurements.store import TABLES
        return {t: sorted(json.dumps(r, sort_keys=True, default=str) for r in s.rows(t))
                for t in TABLES}


def predict_row(capsys, *extra):
    rc, out, err = hw(capsys, "predict", "--target", "tpu-v6e", "--arch", ARCH,
                      "--workload", "2,32,bfloat16", "--json", *extra)
    assert rc == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1]), err


def test_import_fit_predict_calibrated(env, capsys):
    db = env / "s.db"
    before = (hashlib.sha256(RAW).hexdigest(), sorted(p.name for p in FIX.iterdir()))

    row, err = predict_row(capsys)               # nothing fitted yet: analytic, and it says so
    assert row["status"] == "uncalibrated" and "hwdistill fit --target tpu-v6e" in err

    rc, out, err = hw(capsys, "store", "--store", db, "import", CAPTURE)
    assert rc == 0, err
    assert "TPU v6 Lite x4 -> target tpu-v6e" in out
    assert "op_timings=17 of 17, latencies=3 of 3 (3 programs)" in out
    info = json.loads(hw(capsys, "store", "--store", db, "info")[1])
    (fp_id, counts), = info["fingerprints"].items()
    assert counts["op_timings"] == 17 and counts["latencies"] == 3
    assert "TPU v6 Lite" in counts["describe"]

    snapshot = dump(db)                          # importing again adds nothing
    rc, out, _ = hw(capsys, "store", "--store", db, "import", CAPTURE)
    assert rc == 0 and "op_timings=0 of 17, latencies=0 of 3" in out
    assert dump(db) == snapshot
    assert (hashlib.sha256(CAPTURE.read_bytes()).hexdigest(),
            sorted(p.name for p in FIX.iterdir())) == before      # the source is untouched

    rc, out, err = hw(capsys, "fit", "--target", "tpu-v6e", "--store", db)
    assert rc == 0, err
    assert "composition: plain sum of op times: 3 programs are too few" in out
    model_dir = env / "models" / fp_id
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["spec"]["name"] == "tpu-v6e" and meta["fingerprint_id"] == fp_id
    kinds = meta["summary"]["training_op_kinds"]
    assert kinds == {"all-reduce": 1, "broadcast": 1, "copy-done": 6, "copy-start": 6,
                     "fusion:elementwise": 3}
    assert meta["summary"]["cv"] == "leave-one-program-out"
    assert meta["summary"]["composition_fitted"] is False      # 3 programs: a plain sum
    assert "no matmul (dot/convolution) op among them" in out    # said, not hidden
    assert "bytes moved per op 5.37e+09 to 1.07e+10" in out     # every capture op is 5-10 GB

    row, err = predict_row(capsys)
    assert row["status"] == "calibrated" and row["method"] == "learned"
    assert row["latency_ms"] > 0 and row["xla_estimated_cycles"] > 0
    # the student's matmul fusions are of a kind the capture never showed the model
    assert 0 < row["unseen_ops"] < row["ops"]
    assert "unseen_ops are ops of other kinds" in err

    # a model of another target is refused, not silently used
    rc, _, err = hw(capsys, "predict", "--target", "tpu-v5e", "--arch", ARCH,
                    "--workload", "2,32,bfloat16", "--model", model_dir)
    assert rc == 2 and "trained for 'tpu-v6e'" in err


def test_import_from_a_profile_folder(env, capsys):
    """jax.profiler.trace writes plugins/profile/RUN/HOST.xplane.pb: the folder will do."""
    run = env / "prof" / "plugins" / "profile" / "2025_03_11"
    run.mkdir(parents=True)
    shutil.copyfile(CAPTURE, run / "host.xplane.pb")
    rc, out, err = hw(capsys, "store", "--store", env / "s.db", "import", env / "prof")
    assert rc == 0 and "op_timings=17 of 17" in out, err
    (run / "other.xplane.pb").write_bytes(RAW)
    rc, _, err = hw(capsys, "store", "--store", env / "s.db", "import", env / "prof")
    assert rc == 2 and "holds 2 *.xplane.pb files" in err


def test_fit_target_without_its_records_names_what_the_store_holds(env, capsys, fp):
    db = env / "s.db"
    with Store(db) as s:
        s.register_fingerprint(fp)               # a CPU store, no TPU record
    rc, _, err = hw(capsys, "fit", "--target", "tpu-v6e", "--store", db)
    assert rc == 2
    assert "holds no records of target 'tpu-v6e'" in err and fp.id in err
    assert "hwdistill store import CAPTURE.xplane.pb" in err


def test_not_a_tpu_capture(env, capsys):
    """A real capture of this CPU (jax.profiler), a converted JSON trace, a file of another
    kind: each is refused naming the file and what to pass instead; no store is created."""
    # in a child process: once libtpu is loaded (the AOT compiles above), tracing in this
    # process segfaults (docs/architecture.md)
    subprocess.run([sys.executable, "-c", CPU_PROFILE, str(env / "cpu_profile")], check=True,
                   capture_output=True, timeout=300)
    db = env / "s.db"
    cases = {
        env / "cpu_profile": "has no TPU device plane",
        FIX / "cpu_tiny.trace.json.gz": "Import the *.xplane.pb it was converted from",
        FIX / "tiny_space.toml": "not a readable profiler capture",
        env / "missing.xplane.pb": "does not exist",
    }
    for source, message in cases.items():
        rc, _, err = hw(capsys, "store", "--store", db, "import", source)
        assert rc == 2 and message in err, (source, err)
        assert str(source.name) in err or str(source) in err
    assert not db.exists()


def _check_refused_or_imported(env, capsys, data: bytes):
    """A damaged capture either still reads as a TPU capture (a flipped byte inside a number
    or a name) and imports, or is refused in one line naming the file, with the store left
    exactly as it was. Never a traceback."""
    src = env / "damaged.xplane.pb"
    src.write_bytes(data)
    db = env / "s.db"
    db.unlink(missing_ok=True)
    with Store(db) as s:                          # a store with something in it already
        s.register_fingerprint(s_fp := _cpu_fp())
    before = dump(db)
    rc, out, err = hw(capsys, "store", "--store", db, "import", src)
    assert rc in (0, 2), err
    if rc == 2:
        line, = [ln for ln in err.splitlines() if ln.startswith("hwdistill store: error:")]
        assert str(src) in line
        assert dump(db) == before
    else:
        assert "-> target tpu-v6e" in out
        with Store(db, readonly=True) as s:
            assert s_fp.id in {f.id for f in s.fingerprints()}
    return rc


def _cpu_fp():
    from conftest import make_fp
    return make_fp()


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(RAW) - 1))
def test_truncated_capture(env, capsys, cut):
    _check_refused_or_imported(env, capsys, RAW[:cut])


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(RAW) - 1), st.integers(0, 255)),
                      min_size=1, max_size=6))
def test_garbled_capture(env, capsys, flips):
    data = bytearray(RAW)
    for i, b in flips:
        data[i] = b
    _check_refused_or_imported(env, capsys, bytes(data))


def test_garbled_hlo_metadata_is_refused_or_imported(env, capsys):
    """One byte flipped near the main module's embedded HLO, where a flip often still parses
    as an XSpace: seeded, six cases, which cover both outcomes (seed 0: a module's HLO lost,
    an instruction renamed; and imports of what still reads)."""
    at = RAW.find(b"main.22_spmd")
    rng = random.Random(0)
    outcomes = set()
    for _ in range(6):
        data = bytearray(RAW)
        data[rng.randrange(at - 6000, at + 6000)] = rng.randrange(256)
        outcomes.add(_check_refused_or_imported(env, capsys, bytes(data)))
    assert outcomes == {0, 2}
