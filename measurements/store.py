"""The measurement store: SQLite (WAL) holding what hardware and training said.

One file holds hardware fingerprints, runs, per-op timings, end-to-end latencies and search
evaluations. Writes are transactional and idempotent: every record has a content key and the
same key written twice is stored once. The schema is versioned (``PRAGMA user_version``) with
forward migrations; a store written by a newer hwdistill is refused rather than guessed at.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .fingerprint import FingerprintMismatchError, HardwareFingerprint, check_compatible
from .records import Evaluation, LatencyRecord, OpTiming, canonical_json, from_row, to_row

__all__ = ["Store", "StoreError", "StoreSchemaError", "SCHEMA_VERSION", "DEFAULT_STORE",
           "resolve_location"]

DEFAULT_STORE = os.environ.get("HWDISTILL_STORE", "hwdistill.db")

# Forward migrations: MIGRATIONS[i] takes a store from version i to i + 1.
MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE fingerprints (
        id TEXT PRIMARY KEY, json TEXT NOT NULL, created_at REAL NOT NULL);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, fingerprint_id TEXT, args TEXT NOT NULL,
        status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL);
    CREATE TABLE op_timings (
        key TEXT PRIMARY KEY, fingerprint_id TEXT NOT NULL, run_id TEXT NOT NULL,
        program TEXT NOT NULL, op_name TEXT NOT NULL, opcode TEXT NOT NULL,
        time_us_median REAL NOT NULL, time_us_iqr REAL NOT NULL, time_us_p90 REAL NOT NULL,
        n_runs INTEGER NOT NULL, features TEXT NOT NULL, tag TEXT NOT NULL,
        created_at REAL NOT NULL);
    CREATE INDEX op_timings_fp ON op_timings(fingerprint_id, program);
    CREATE TABLE latencies (
        key TEXT PRIMARY KEY, fingerprint_id TEXT NOT NULL, run_id TEXT NOT NULL,
        arch TEXT NOT NULL, workload TEXT NOT NULL, latency_ms_median REAL NOT NULL,
        latency_ms_iqr REAL NOT NULL, latency_ms_p90 REAL NOT NULL, n_runs INTEGER NOT NULL,
        compile_s REAL, extra TEXT NOT NULL, tag TEXT NOT NULL, created_at REAL NOT NULL);
    CREATE INDEX latencies_fp ON latencies(fingerprint_id);
    CREATE TABLE evaluations (
        key TEXT PRIMARY KEY, run_id TEXT NOT NULL, fingerprint_id TEXT NOT NULL,
        arch TEXT NOT NULL, objectives TEXT NOT NULL, status TEXT NOT NULL,
        provenance TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
    CREATE INDEX evaluations_run ON evaluations(run_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_TABLES = {"op_timings": OpTiming, "latencies": LatencyRecord, "evaluations": Evaluation}
TABLES = ("fingerprints", "runs", *_TABLES)


class StoreError(RuntimeError):
    """The store cannot be used as asked (corrupt file, wrong fingerprint, ...)."""


class StoreSchemaError(StoreError):
    """The store's schema is newer than this hwdistill understands."""


def resolve_location(location: str | os.PathLike) -> Path:
    """A store location is a path or an SQLAlchemy-style URL: ``sqlite:///rel.db`` is
    relative, ``sqlite:////abs/path.db`` absolute."""
    loc = os.fspath(location)
    if "://" in loc:
        if not loc.startswith("sqlite:///"):
            raise StoreError(f"store URL {loc!r} is not supported; use sqlite:///PATH "
                             "or a plain file path")
        loc = loc[len("sqlite:///"):]
    return Path(loc)


class Store:
    """A measurement store. Use as a context manager or call :meth:`close`.

    >>> with Store("results.db") as store:           # doctest: +SKIP
    ...     store.put_latency(record)
    """

    def __init__(self, location: str | os.PathLike = DEFAULT_STORE, *, readonly: bool = False):
        self.path = resolve_location(location)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreError(f"store {self.path} does not exist; run `hwdistill measure` or "
                             "`hwdistill profile` first, or pass --store PATH")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout = 60000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} is not a readable hwdistill store ({e}). "
                             "If it is corrupt, move it aside and re-run; nothing is written "
                             "to it.") from e

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreSchemaError(
                f"store {self.path} has schema version {version}, newer than the {SCHEMA_VERSION} "
                "this hwdistill understands. Upgrade hwdistill (pip install -U hwdistill); the "
                "store was left untouched.")
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise StoreSchemaError(f"store {self.path} has schema version {version}; open it "
                                   f"writable once to migrate it to {SCHEMA_VERSION}")
        with self._transaction():
            # re-read inside the write lock: another process may have migrated meanwhile
            version = self.schema_version
            for i in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self):
        if self.readonly:
            raise StoreError(f"store {self.path} was opened read-only")
        return Store._Tx(self._db)

    # -- fingerprints ----------------------------------------------------------------------
    def register_fingerprint(self, fp: HardwareFingerprint) -> str:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO fingerprints VALUES (?, ?, ?)",
                       (fp.id, fp.to_json(), time.time()))
        return fp.id

    def fingerprints(self) -> list[HardwareFingerprint]:
        rows = self._db.execute("SELECT json FROM fingerprints ORDER BY created_at").fetchall()
        return [HardwareFingerprint.from_json(r[0]) for r in rows]

    def fingerprint(self, fingerprint_id: str) -> HardwareFingerprint:
        row = self._db.execute("SELECT json FROM fingerprints WHERE id = ?",
                               (fingerprint_id,)).fetchone()
        if row is None:
            known = [fp.id for fp in self.fingerprints()]
            raise StoreError(f"fingerprint {fingerprint_id!r} is not in {self.path}; "
                             f"known: {known}")
        return HardwareFingerprint.from_json(row[0])

    def check_fingerprint(self, fp: HardwareFingerprint, *, allow_foreign: bool = False) -> None:
        """Refuse to add measurements of ``fp`` to a store written by other hardware.

        A store holding records of another fingerprint only (e.g. a colleague's store, or one
        written before a jax upgrade) is refused unless ``allow_foreign``; imported
        calibration data from other targets is fine once the store also holds ``fp``.
        """
        known = self.fingerprints()
        if not known or allow_foreign or any(k.id == fp.id for k in known):
            return
        same_target = [k for k in known if k.target == fp.target]
        if not same_target:
            return  # a store may hold calibration data of other targets (store import)
        diffs = "; ".join(
            f"{k.id}: " + ", ".join(f"{f}={a!r} (this machine: {b!r})"
                                    for f, (a, b) in sorted(k.differences(fp).items()))
            for k in same_target)
        raise FingerprintMismatchError(
            f"store {self.path} was written on other {fp.target} hardware/software ({diffs}). "
            f"This machine is {fp.id}. Fix: use another store (--store PATH), or pass "
            "--allow-foreign to add this machine's records beside them (models and searches "
            "still keep fingerprints apart).")

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, kind: str, *, fingerprint_id: str = "", args: dict | None = None,
                  run_id: str | None = None) -> str:
        """Record the start of a run; an existing ``run_id`` is resumed, not duplicated."""
        run_id = run_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, 'running', ?, NULL)",
                       (run_id, kind, fingerprint_id, canonical_json(args or {}), time.time()))
            db.execute("UPDATE runs SET status = 'running' WHERE id = ?", (run_id,))
        return run_id

    def finish_run(self, run_id: str, status: str = "done") -> None:
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                       (status, time.time(), run_id))

    def runs(self) -> list[dict]:
        return [dict(r) for r in self._db.execute("SELECT * FROM runs ORDER BY started_at")]

    # -- records ---------------------------------------------------------------------------
    def _put(self, table: str, records: Iterable) -> int:
        rows = [to_row(r) for r in records]
        if not rows:
            return 0
        cols = list(rows[0])
        sql = (f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' * len(cols))})")
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
            return db.total_changes - before

    def put_op_timings(self, records: Iterable[OpTiming]) -> int:
        """Store op timings in one transaction; returns how many were new."""
        return self._put("op_timings", records)

    def put_latency(self, record: LatencyRecord) -> bool:
        """Store one latency; False if the same key was already stored."""
        return self._put("latencies", [record]) == 1

    def put_latencies(self, records: Iterable[LatencyRecord]) -> int:
        return self._put("latencies", records)

    def put_evaluation(self, ev: Evaluation) -> None:
        """Insert or update a search candidate (its key is run + architecture)."""
        row = to_row(ev)
        with self._transaction() as db:
            cur = db.execute("SELECT created_at FROM evaluations WHERE key = ?", (row["key"],))
            old = cur.fetchone()
            if old is not None:
                row["created_at"] = old[0]
            cols = list(row)
            db.execute(f"INSERT OR REPLACE INTO evaluations ({', '.join(cols)}) "
                       f"VALUES ({', '.join('?' * len(cols))})", tuple(row.values()))

    def has(self, table: str, key: str) -> bool:
        self._check_table(table)
        return self._db.execute(f"SELECT 1 FROM {table} WHERE key = ?",
                                (key,)).fetchone() is not None

    def keys(self, table: str, fingerprint_id: str | None = None) -> set[str]:
        self._check_table(table)
        if fingerprint_id is None:
            return {r[0] for r in self._db.execute(f"SELECT key FROM {table}")}
        return {r[0] for r in self._db.execute(
            f"SELECT key FROM {table} WHERE fingerprint_id = ?", (fingerprint_id,))}

    def _records(self, table: str, fingerprint_id: str | None, allow_mixed: bool,
                 where: str = "", params: tuple = ()) -> list:
        cls = _TABLES[table]
        clauses, args = [], list(params)
        if where:
            clauses.append(where)
        if fingerprint_id is not None:
            clauses.append("fingerprint_id = ?")
            args.append(fingerprint_id)
        sql = f"SELECT * FROM {table}" + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        rows = self._db.execute(sql + " ORDER BY created_at, key", args).fetchall()
        if fingerprint_id is None and table != "evaluations":
            ids = {r["fingerprint_id"] for r in rows}
            if len(ids) > 1 and not allow_mixed:
                check_compatible([self.fingerprint(i) for i in sorted(ids)])
        out = []
        for r in rows:
            d = dict(r)
            if "compile_s" in d and d["compile_s"] is None:
                d["compile_s"] = math.nan
            out.append(from_row(cls, d))
        return out

    def op_timings(self, fingerprint_id: str | None = None, *, program: str | None = None,
                   allow_mixed: bool = False) -> list[OpTiming]:
        where, params = ("program = ?", (program,)) if program else ("", ())
        return self._records("op_timings", fingerprint_id, allow_mixed, where, params)

    def latencies(self, fingerprint_id: str | None = None, *,
                  allow_mixed: bool = False) -> list[LatencyRecord]:
        return self._records("latencies", fingerprint_id, allow_mixed)

    def evaluations(self, run_id: str | None = None) -> list[Evaluation]:
        where, params = ("run_id = ?", (run_id,)) if run_id else ("", ())
        return self._records("evaluations", None, True, where, params)

    # -- inspection, export, import --------------------------------------------------------
    def _check_table(self, table: str) -> None:
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}; tables are {list(TABLES)}")

    def info(self) -> dict:
        """Counts per table and per fingerprint."""
        out = {"path": str(self.path), "schema_version": self.schema_version,
               "fingerprints": {}, "runs": self._db.execute(
                   "SELECT COUNT(*) FROM runs").fetchone()[0]}
        for fp in self.fingerprints():
            out["fingerprints"][fp.id] = {"describe": fp.describe(), **{
                t: self._db.execute(f"SELECT COUNT(*) FROM {t} WHERE fingerprint_id = ?",
                                    (fp.id,)).fetchone()[0] for t in _TABLES}}
        return out

    def rows(self, table: str) -> Iterator[dict]:
        self._check_table(table)
        for r in self._db.execute(f"SELECT * FROM {table}"):
            yield dict(r)

    def export(self, table: str, path: str | os.PathLike, fmt: str | None = None) -> int:
        """Write a table to CSV or JSON (by ``fmt`` or the file suffix); returns row count."""
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "csv").lower()
        rows = list(self.rows(table))
        if fmt == "json":
            path.write_text(json.dumps(rows, indent=1, default=str))
        elif fmt == "csv":
            cols = [c[1] for c in self._db.execute(f"PRAGMA table_info({table})")]
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                w.writerows(rows)
        else:
            raise StoreError(f"export format {fmt!r} unknown; use csv or json")
        return len(rows)

    def import_from(self, other: str | os.PathLike) -> dict[str, int]:
        """Merge another store (e.g. profiled on a TPU VM) into this one; idempotent."""
        src = Store(other, readonly=True)
        try:
            counts = {}
            with self._transaction() as db:
                for table in TABLES:
                    rows = list(src.rows(table))
                    if not rows:
                        counts[table] = 0
                        continue
                    cols = list(rows[0])
                    before = db.total_changes
                    db.executemany(
                        f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' * len(cols))})",
                        [tuple(r[c] for c in cols) for r in rows])
                    counts[table] = db.total_changes - before
            return counts
        finally:
            src.close()
