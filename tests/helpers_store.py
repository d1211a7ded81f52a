"""Helpers run in child processes by the store tests (must be importable by path)."""

import os
import sys

from measurements import LatencyRecord, Store, Trial


def lat(fp_id: str, i: int, tag: str = "") -> LatencyRecord:
    return LatencyRecord(fingerprint_id=fp_id, arch={"layers": i}, workload={"b": 1, "s": 8},
                         latency_ms_median=float(i), latency_ms_iqr=0.1, latency_ms_p90=i + .2,
                         n_runs=5, tag=tag)


def writer(path: str, fp_id: str, start: int, n: int) -> None:
    with Store(path) as s:
        for i in range(start, start + n):
            s.put_latency(lat(fp_id, i))


def die_mid_transaction(path: str, fp_id: str, committed: int) -> None:
    """Commit `committed` records, then start a transaction and get killed inside it."""
    s = Store(path)
    for i in range(committed):
        s.put_latency(lat(fp_id, i))
    db = s._db
    db.execute("BEGIN IMMEDIATE")
    for i in range(committed, committed + 50):
        db.execute("INSERT INTO runs VALUES (?, 'x', '', '{}', 'running', 0, NULL)", (str(i),))
    sys.stdout.write("in-transaction\n")
    sys.stdout.flush()
    os.kill(os.getpid(), 9)


def die_mid_trial_update(path: str, n: int, done: int) -> None:
    """Write a batch of `n` trials, finish the first `done`, start one, then get killed inside
    the transaction that marks it done (after its UPDATE ran, before COMMIT)."""
    s = Store(path)
    s.put_trials([Trial(run_id="r", index=i, x=[i, i / 2], source="initial") for i in range(n)])
    for i in range(done):
        s.update_trial("r", i, status="running", provenance={"attempts": 1})
        s.update_trial("r", i, status="done", values={"f0": float(i)}, provenance={"cost_s": 1})
    s.update_trial("r", done, status="running", provenance={"attempts": 1})

    def die_before_commit(tx, exc_type, *_):
        sys.stdout.write("in-transaction\n")
        sys.stdout.flush()
        os.kill(os.getpid(), 9)

    Store._Tx.__exit__ = die_before_commit
    s.update_trial("r", done, status="done", values={"f0": -1.0}, provenance={"cost_s": 9})
