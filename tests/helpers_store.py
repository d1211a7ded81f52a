"""Helpers run in child processes by the store tests (must be importable by path)."""

import os
import sys

from measurements import LatencyRecord, Store


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
