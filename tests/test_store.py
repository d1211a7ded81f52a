import json
import math
import multiprocessing as mp
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from measurements import (FingerprintMismatchError, HardwareFingerprint, LatencyRecord,
                          OpTiming, SCHEMA_VERSION, Store, StoreError, StoreSchemaError, Trial,
                          TrialStatusError)
from measurements.records import TRIAL_STATUS_RANK
from measurements.store import MIGRATIONS
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
    tr = Trial(run_id="r1", index=0, x={"layers": 4}, source="initial", status="done",
               values={"latency_ms": 3.2}, fingerprint_id=fp.id, provenance={"git": "abc"})
    with Store(path) as s:
        s.register_fingerprint(fp)
        assert s.put_op_timings([op]) == 1
        assert s.put_latency(rec)
        assert s.put_trials([tr]) == 1
    with Store(path, readonly=True) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.fingerprints() == [fp]
        assert s.op_timings() == [op]
        assert s.latencies() == [rec]
        assert s.trials("r1") == [tr]


def test_idempotent_writes(tmp_path, fp):
    with Store(tmp_path / "s.db") as s:
        assert s.put_latency(lat(fp.id, 1))
        assert not s.put_latency(lat(fp.id, 1))           # same key: stored once
        assert s.put_latency(lat(fp.id, 1, tag="repeat-2"))  # deliberate repeat: new key
        assert s.put_latencies([lat(fp.id, 1), lat(fp.id, 2)]) == 1
        assert len(s.latencies()) == 3


def _batch(run="r", n=3, start=0, round_=0, source="initial", x=lambda i: [i, i / 2]):
    return [Trial(run_id=run, index=i, x=x(i), source=source, round=round_)
            for i in range(start, start + n)]


def test_trials_round_trip_nan_dict_and_list_x(tmp_path):
    trials = [Trial(run_id="r", index=0, x=[0.5, 3, float("nan")], source="initial",
                    values={"f0": float("nan"), "g0": -1.0}, provenance={"f0": "measured"}),
              Trial(run_id="r", index=1, x={"layers": 4, "act": "relu"}, source="acquisition",
                    round=1, values={"f0": 2}, fingerprint_id="fp")]
    with Store(tmp_path / "s.db") as s:
        assert s.put_trials(trials) == 2
    with Store(tmp_path / "s.db", readonly=True) as s:
        got = s.trials("r")
    assert [g.key for g in got] == [t.key for t in trials]
    assert got[1] == trials[1] and got[1].values == {"f0": 2.0}
    a = got[0]
    assert a.x[:2] == [0.5, 3] and math.isnan(a.x[2]) and math.isnan(a.values["f0"])
    assert a.values["g0"] == -1.0 and a.provenance == {"f0": "measured"}
    assert (a.source, a.round, a.status, a.created_at) == ("initial", 0, "pending",
                                                           trials[0].created_at)
    assert Trial(run_id="r", index=0, x=(1, 2), source="s").x == [1, 2]  # stored JSON form


def test_trial_validation_names_field_and_fix():
    for kw, match in [({"status": "finished"}, "status='finished'"),
                      ({"index": -1}, "index=-1"), ({"index": 1.0}, "index=1.0"),
                      ({"source": ""}, "source=''.*initial"),
                      ({"values": {"f0": math.inf}}, r"values\['f0'\]=inf.*failed"),
                      ({"values": {"f0": "0.3"}}, "values"), ({"x": {1, 2}}, "x=.*not JSON")]:
        args = {"run_id": "r", "index": 0, "x": [0], "source": "initial", **kw}
        with pytest.raises(ValueError, match=match):
            Trial(**args)


def test_put_trials_is_idempotent_and_dense(tmp_path):
    with Store(tmp_path / "s.db") as s:
        assert s.put_trials(_batch(n=3)) == 3
        s.update_trial("r", 0, status="done", values={"f0": 1.0})
        assert s.put_trials(_batch(n=3)) == 0                  # re-written after a crash: no-op
        assert s.trials("r", status="done")[0].values == {"f0": 1.0}  # and nothing reset
        assert s.put_trials(_batch(n=4)) == 1
        assert s.put_trials([]) == 0
        with pytest.raises(StoreError, match=r"index\(es\) \[4, 5\] missing"):
            s.put_trials(_batch(n=1, start=6))
        assert [t.index for t in s.trials("r")] == [0, 1, 2, 3]
        assert s.put_trials(_batch(run="other", n=2)) == 2
        assert [(t.run_id, t.index) for t in s.trials()] == [
            ("other", 0), ("other", 1), ("r", 0), ("r", 1), ("r", 2), ("r", 3)]


def test_put_trials_with_other_x_is_refused(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.put_trials(_batch(n=3))
        with pytest.raises(StoreError) as e:
            s.put_trials(_batch(n=3, x=lambda i: [i, 7]))
        msg = str(e.value)
        assert "trial 0 of run 'r'" in msg and "x=[0,0.0]" in msg and "x=[0,7]" in msg
        assert "same seed" in msg and "new run id" in msg
        with pytest.raises(StoreError, match="trial 3"):  # inside one batch too
            s.put_trials(_batch(n=1, start=3) + _batch(n=1, start=3, x=lambda i: [9]))
        assert [t.x for t in s.trials("r")] == [[0, 0.0], [1, 0.5], [2, 1.0]]


_statuses = st.lists(st.sampled_from(Trial.STATUSES), max_size=8)


@settings(max_examples=40, deadline=None)
@given(requests=_statuses)
def test_trial_status_only_moves_forward(tmp_path_factory, requests):
    with Store(tmp_path_factory.mktemp("t") / "s.db") as s:
        s.put_trials(_batch(n=1))
        cur, expected_prov, rank_before = "pending", {}, 0
        for k, req in enumerate(requests):
            legal = (TRIAL_STATUS_RANK[req] > TRIAL_STATUS_RANK[cur]
                     or cur == req == "running")
            before = list(s.rows("trials"))
            if legal:
                t = s.update_trial("r", 0, status=req, values={"f0": float(k)},
                                   provenance={"step": k, f"s{k}": req})
                expected_prov.update({"step": k, f"s{k}": req})
                assert t.status == req and t.provenance == expected_prov
                assert s.trials("r") == [t]
                cur = req
            else:
                with pytest.raises(TrialStatusError) as e:
                    s.update_trial("r", 0, status=req, values={"f0": -1.0})
                assert isinstance(e.value, ValueError) and isinstance(e.value, StoreError)
                assert f"trial 0 of run 'r' is {cur!r} and cannot become {req!r}" in str(e.value)
                assert list(s.rows("trials")) == before  # the row is unchanged
            stored = s.trials("r")[0].status
            assert stored == cur and TRIAL_STATUS_RANK[stored] >= rank_before
            rank_before = TRIAL_STATUS_RANK[stored]


def test_update_trial_merges_provenance_and_keeps_created_at(tmp_path):
    with Store(tmp_path / "s.db") as s:
        s.put_trials(_batch(n=2))
        (t0, _) = s.trials("r")
        s.update_trial("r", 1, status="running", provenance={"attempts": 1, "host": "a"})
        t = s.update_trial("r", 1, status="running", provenance={"attempts": 2})  # a retry
        assert t.provenance == {"attempts": 2, "host": "a"}
        t = s.update_trial("r", 1, status="failed", provenance={"error": "OOM"})
        assert t.provenance == {"attempts": 2, "host": "a", "error": "OOM"} and t.values == {}
        assert t.created_at == s.trials("r")[1].created_at and t.updated_at >= t.created_at
        assert s.trials(status="failed") == [t] and s.trials("r", status="pending") == [t0]
        with pytest.raises(StoreError, match=r"no trial 5 of run 'r'.*has 2 trials.*put_trials"):
            s.update_trial("r", 5, status="done")
        with pytest.raises(StoreError, match="no trial 0 of run 'nope'"):
            s.update_trial("nope", 0, status="running")
        with pytest.raises(ValueError, match="status='finished'"):
            s.update_trial("r", 0, status="finished")


def test_search_state_latest_round(tmp_path):
    with Store(tmp_path / "s.db") as s:
        assert s.search_state("r") is None
        s.put_search_state("r", 0, {"ref_point": [1.0, 2.0]})
        s.put_search_state("r", 2, {"noisy": True, "log_acq": [float("nan")]})
        s.put_search_state("r", 1, {"n": 1})
        s.put_search_state("other", 5, {})
        s.put_search_state("r", 1, {"n": 2})  # a round's state is replaced
        rnd, state = s.search_state("r")
        assert rnd == 2 and state["noisy"] is True and math.isnan(state["log_acq"][0])
        assert [r for r, _ in s.search_states("r")] == [0, 1, 2]
        assert s.search_states("r")[1] == (1, {"n": 2})
        assert s.info()["search_state"] == 4 and s.info()["trials"] == 0


def test_import_moves_trials_forward_only(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with Store(a) as s:
        s.put_trials(_batch(n=2))
        s.update_trial("r", 0, status="running")
        s.put_search_state("r", 0, {"here": "a"})
    with Store(b) as s:
        s.put_trials(_batch(n=3))
        s.update_trial("r", 0, status="done", values={"f0": 0.25}, provenance={"cost_s": 3})
        s.put_search_state("r", 0, {"here": "b"})
        s.put_search_state("r", 1, {"here": "b"})
        done_in_b = s.trials("r")[0]
    with Store(a) as s:
        counts = s.import_from(b)
        assert counts["trials"] == 1 and counts["trials_updated"] == 1
        assert counts["search_state"] == 1
        assert s.trials("r")[0] == done_in_b and len(s.trials("r")) == 3
        assert s.search_states("r") == [(0, {"here": "a"}), (1, {"here": "b"})]
        assert s.import_from(b)["trials_updated"] == 0                 # idempotent
        s.update_trial("r", 1, status="failed", provenance={"error": "x"})
    with Store(b) as s:  # the reverse never downgrades, and moves b's pending 1 to failed
        counts = s.import_from(a)
        assert counts["trials"] == 0 and counts["trials_updated"] == 1
        assert s.trials("r")[0] == done_in_b and s.trials("r")[1].status == "failed"
    c = tmp_path / "c.db"
    with Store(c) as s:
        s.put_trials(_batch(n=1, x=lambda i: {"other": "search"}))
    with Store(a) as s:
        before = list(s.rows("trials"))
        with pytest.raises(StoreError, match="trial 0 of run 'r'.*different searches"):
            s.import_from(c)
        assert list(s.rows("trials")) == before


def _v1_store(path, fp):
    """A store as hwdistill wrote it at schema version 1 (evaluations, no trials)."""
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO fingerprints VALUES (?, ?, 0)", (fp.id, fp.to_json()))
    db.execute("INSERT INTO latencies VALUES ('k1', ?, 'run0', '{\"l\":2}', '{\"b\":1}', 1.5, "
               "0.1, 1.7, 5, NULL, '{}', '', 10.0)", (fp.id,))
    evs = [  # key, run, arch, objectives, status, provenance, created, updated
        ("e1", "s1", '{"l":2}', '{"acc":0.8,"lat":1.5}', "done", '{"git":"a"}', 30.0, 31.0),
        ("e2", "s1", '{"l":4}', '{}', "pending", '{}', 20.0, 20.0),
        ("e3", "s2", '{"l":6}', '{"acc":0.9}', "failed", '{"error":"OOM"}', 5.0, 6.0),
        ("e0", "s1", '{"l":1}', '{"acc":0.7}', "running", '{}', 20.0, 25.0),
    ]
    db.executemany("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(k, r, fp.id, a, o, st_, p, c, u) for k, r, a, o, st_, p, c, u in evs])
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def test_v1_store_migrates_losslessly(tmp_path, fp):
    path, copy = tmp_path / "v1.db", tmp_path / "v1-copy.db"
    _v1_store(path, fp)
    shutil.copy(path, copy)
    v1_bytes = path.read_bytes()
    raw = sqlite3.connect(path)
    latencies_before = raw.execute("SELECT * FROM latencies").fetchall()
    raw.close()
    with Store(copy, readonly=True) as s:  # read-only: read through views, file untouched
        assert s.schema_version == 1
        read_compat = s.trials()
        assert s.info()["trials"] == 4 and s.search_state("s1") is None
    assert copy.read_bytes() == v1_bytes
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION == 2
        got = s.trials()
        assert got == read_compat
        assert [(t.run_id, t.index, t.x, t.status) for t in got] == [
            ("s1", 0, {"l": 1}, "running"),  # created_at 20.0, key e0 < e2
            ("s1", 1, {"l": 4}, "pending"),
            ("s1", 2, {"l": 2}, "done"),
            ("s2", 0, {"l": 6}, "failed")]
        assert got[2].values == {"acc": 0.8, "lat": 1.5} and got[2].provenance == {"git": "a"}
        assert got[3].provenance == {"error": "OOM"} and got[3].values == {"acc": 0.9}
        assert all(t.source == "evaluations-v1" and t.round == 0 and t.fingerprint_id == fp.id
                   for t in got)
        assert [(t.created_at, t.updated_at) for t in got] == [
            (20.0, 25.0), (20.0, 20.0), (30.0, 31.0), (5.0, 6.0)]
        assert len(s.latencies()) == 1 and s.fingerprints() == [fp]
        s.update_trial("s1", 1, status="running")  # migrated trials are ordinary trials
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT * FROM latencies").fetchall() == latencies_before
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "evaluations" not in tables and {"trials", "search_state"} <= tables
    raw.close()
    with Store(tmp_path / "new.db") as s:  # a v1 store is importable without migrating it
        counts = s.import_from(copy)
        assert counts["trials"] == 4 and counts["latencies"] == 1
        assert s.trials() == read_compat
    assert copy.read_bytes() == v1_bytes  # the imported store is never written


def test_killed_mid_trial_update_keeps_every_committed_trial(tmp_path):
    path = str(tmp_path / "s.db")
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import helpers_store as h; "
            f"h.die_mid_trial_update({path!r}, 6, 3)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert "in-transaction" in proc.stdout and proc.returncode == -9, proc.stderr
    with Store(path) as s:
        trials = s.trials("r")
        assert [t.index for t in trials] == list(range(6))
        assert [t.status for t in trials] == ["done"] * 3 + ["running"] + ["pending"] * 2
        assert [t.values for t in trials[:3]] == [{"f0": 0.0}, {"f0": 1.0}, {"f0": 2.0}]
        killed = trials[3]  # its done-update was not committed: nothing of it is visible
        assert killed.values == {} and killed.provenance == {"attempts": 1}
        assert s.update_trial("r", 3, status="done", values={"f0": 3.0}).status == "done"


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
