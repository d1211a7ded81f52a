import json
import math
import multiprocessing as mp
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from measurements import (Evaluation, FingerprintMismatchError, HardwareFingerprint,
                          LatencyRecord, OpTiming, SCHEMA_VERSION, Store, StoreError,
                          StoreSchemaError)
from conftest import make_fp
from helpers_store import lat, writer

HERE = Path(__file__).parent


def test_round_trip_all_tables(tmp_path, fp):
    path = tmp_path / "s.db"
    op = OpTiming(fingerprint_id=fp.id, program="p1", op_name="fusion.3", opcode="fusion",
                  time_us_median=12.5, time_us_iqr=0.5, time_us_p90=13.0, n_runs=9,
                  features={"flops": 1e6, "shape": [8, 128]})
    rec = LatencyRecord(fingerprint_id=fp.id, arch={"layers": 4}, workload={"b": 8, "s": 128},
                        latency_ms_median=3.2, latency_ms_iqr=0.1, latency_ms_p90=3.4,
                        n_runs=20, compile_s=1.5)
    ev = Evaluation(run_id="r1", arch={"layers": 4}, objectives={"latency_ms": 3.2},
                    status="done", fingerprint_id=fp.id, provenance={"git": "abc"})
    with Store(path) as s:
        s.register_fingerprint(fp)
        assert s.put_op_timings([op]) == 1
        assert s.put_latency(rec)
        s.put_evaluation(ev)
    with Store(path, readonly=True) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.fingerprints() == [fp]
        assert s.op_timings() == [op]
        assert s.latencies() == [rec]
        assert s.evaluations("r1") == [ev]


def test_idempotent_writes(tmp_path, fp):
    with Store(tmp_path / "s.db") as s:
        assert s.put_latency(lat(fp.id, 1))
        assert not s.put_latency(lat(fp.id, 1))           # same key: stored once
        assert s.put_latency(lat(fp.id, 1, tag="repeat-2"))  # deliberate repeat: new key
        assert s.put_latencies([lat(fp.id, 1), lat(fp.id, 2)]) == 1
        assert len(s.latencies()) == 3


def test_evaluation_update_keeps_one_row(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.put_evaluation(Evaluation(run_id="r", arch={"l": 2}))
        s.put_evaluation(Evaluation(run_id="r", arch={"l": 2}, status="done",
                                    objectives={"acc": 0.8}))
        (ev,) = s.evaluations("r")
        assert ev.status == "done" and ev.objectives == {"acc": 0.8}
    with pytest.raises(ValueError, match="status"):
        Evaluation(run_id="r", arch={}, status="finished")


def test_two_processes_writing_at_once_lose_nothing(tmp_path, fp):
    path = str(tmp_path / "s.db")
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=writer, args=(path, fp.id, k * 1000, 150)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with Store(path, readonly=True) as s:
        assert len(s.latencies()) == 300


def test_killed_mid_transaction_keeps_committed_records(tmp_path, fp):
    path = str(tmp_path / "s.db")
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import helpers_store as h; "
            f"h.die_mid_transaction({path!r}, {fp.id!r}, 25)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "in-transaction" in proc.stdout and proc.returncode == -9
    with Store(path) as s:  # readable and writable again
        assert len(s.latencies()) == 25
        assert s.runs() == []  # the uncommitted transaction left nothing
        assert s.put_latency(lat(fp.id, 99))


def test_store_of_other_fingerprint_is_refused(tmp_path, fp):
    other = make_fp(cpu_model="Other CPU", jax_version="0.9.0")
    with Store(tmp_path / "s.db") as s:
        s.register_fingerprint(other)
        s.put_latency(lat(other.id, 1))
        with pytest.raises(FingerprintMismatchError) as e:
            s.check_fingerprint(fp)
        msg = str(e.value)
        assert "cpu_model='Other CPU'" in msg and "--store" in msg and fp.id in msg
        s.check_fingerprint(fp, allow_foreign=True)
        # another target's calibration data (e.g. imported from a TPU VM) is not foreign
        s.register_fingerprint(make_fp(target="tpu", platform="tpu"))
        s.check_fingerprint(make_fp(target="tpu", platform="tpu"))


def test_mixed_fingerprints_refused_unless_asked(tmp_path, fp):
    other = make_fp(cpu_model="Other CPU")
    with Store(tmp_path / "s.db") as s:
        for f in (fp, other):
            s.register_fingerprint(f)
            s.put_latency(lat(f.id, 1))
        with pytest.raises(FingerprintMismatchError, match="Other CPU"):
            s.latencies()
        assert len(s.latencies(allow_mixed=True)) == 2
        assert len(s.latencies(fp.id)) == 1


def test_newer_schema_is_refused_and_untouched(tmp_path, fp):
    path = tmp_path / "s.db"
    with Store(path) as s:
        s.put_latency(lat(fp.id, 1))
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreSchemaError, match="newer"):
        Store(path)
    assert path.read_bytes() == before


def test_old_schema_is_migrated_forward(tmp_path):
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()  # version 0: empty file
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION


def test_corrupt_file_gets_clear_error(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable hwdistill store"):
        Store(path)


def test_url_location_and_bad_url(tmp_path):
    with Store(f"sqlite:///{tmp_path}/u.db") as s:
        assert s.path == tmp_path / "u.db"
    with pytest.raises(StoreError, match="not supported"):
        Store("postgres://host/db")


def test_export_csv_json_and_import(tmp_path, fp):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as s:
        s.register_fingerprint(fp)
        s.put_latencies([lat(fp.id, i) for i in range(5)])
        assert s.export("latencies", tmp_path / "l.csv") == 5
        assert s.export("latencies", tmp_path / "l.json") == 5
    assert len(json.loads((tmp_path / "l.json").read_text())) == 5
    assert (tmp_path / "l.csv").read_text().count("\n") == 6
    with Store(b) as s:
        s.put_latency(lat(fp.id, 0))
        counts = s.import_from(a)
        assert counts["latencies"] == 4 and counts["fingerprints"] == 1
        assert s.import_from(a)["latencies"] == 0
        assert len(s.latencies()) == 5


_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) |
                     st.floats(allow_nan=False) | _names,
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(_names, c, max_size=3),
                     max_leaves=8)
_fps = st.builds(HardwareFingerprint, target=_names, platform=_names, device_kind=_names,
                 device_count=st.integers(0, 4096), cpu_model=_names,
                 cpu_cores=st.integers(0, 1024), jax_version=_names, jaxlib_version=_names,
                 libtpu_version=_names, xla_flags=_names)


@given(_fps)
def test_fingerprint_json_round_trip(fp):
    assert HardwareFingerprint.from_json(fp.to_json()) == fp
    assert HardwareFingerprint.from_json(fp.to_json()).id == fp.id


@settings(max_examples=30, deadline=None)
@given(fp=_fps, arch=st.dictionaries(_names, _json, max_size=4),
       t=st.floats(0, 1e9, allow_nan=False), tag=_names)
def test_record_store_round_trip(tmp_path_factory, fp, arch, t, tag):
    path = tmp_path_factory.mktemp("h") / "s.db"
    rec = LatencyRecord(fingerprint_id=fp.id, arch=arch, workload={"b": 1}, tag=tag,
                        latency_ms_median=t, latency_ms_iqr=t / 10, latency_ms_p90=t,
                        n_runs=3, compile_s=math.nan)
    with Store(path) as s:
        s.register_fingerprint(fp)
        s.put_latency(rec)
        (got,) = s.latencies()
        assert s.fingerprints() == [fp]
    assert got.arch == arch and got.tag == tag and got.latency_ms_median == t
    assert math.isnan(got.compile_s) and got.key == rec.key


def test_fingerprint_json_errors():
    with pytest.raises(ValueError, match="corrupt"):
        HardwareFingerprint.from_json("{not json")
    with pytest.raises(ValueError, match="missing fields"):
        HardwareFingerprint.from_json('{"target": "cpu"}')
