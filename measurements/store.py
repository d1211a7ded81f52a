"""The measurement store: SQLite (WAL) holding what hardware and training said.

One file holds hardware fingerprints, runs, per-op timings, end-to-end latencies, search
trials and search state. Writes are transactional and idempotent: every record has a content
key and the same key written twice is stored once. Search trials are the exception that
changes: a trial is written ``pending`` before it is evaluated and then only moves forward
(``running``, then ``done`` or ``failed``), each step one committed transaction, so a search
killed at any point resumes with no evaluation lost or repeated. The schema is versioned
(``PRAGMA user_version``) with forward migrations; a store written by a newer hwdistill is
refused rather than guessed at, and an older one opened read-only is read through views of
the current schema (nothing is written to it).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import operator
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .fingerprint import FingerprintMismatchError, HardwareFingerprint, check_compatible
from .records import (TRIAL_STATUS_RANK, LatencyRecord, OpTiming, Trial, canonical_json,
                      content_key, from_row, to_row)
from .errors import HwdistillError, InputError

__all__ = ["Store", "StoreError", "StoreSchemaError", "TrialStatusError", "SCHEMA_VERSION",
           "DEFAULT_STORE", "resolve_location"]

DEFAULT_STORE = os.environ.get("HWDISTILL_STORE", "hwdistill.db")

_TRIAL_COLUMNS = ("key", "run_id", "index", "x", "source", "round", "status", "values",
                  "provenance", "fingerprint_id", "created_at", "updated_at")

# v1 `evaluations` rows as v2 trials: numbered per run in the order they were created, the
# architecture as x and the objectives as values (hwdistill_trial_key is Trial.key, registered
# on every connection). No semicolons: migrations are split on them.
_V1_TRIALS = """
    SELECT hwdistill_trial_key(e.run_id, ROW_NUMBER() OVER w - 1) AS key, e.run_id AS run_id,
           ROW_NUMBER() OVER w - 1 AS "index", e.arch AS x, 'evaluations-v1' AS source,
           0 AS round, e.status AS status, e.objectives AS "values",
           e.provenance AS provenance, e.fingerprint_id AS fingerprint_id,
           e.created_at AS created_at, e.updated_at AS updated_at
    FROM main.evaluations AS e
    WINDOW w AS (PARTITION BY e.run_id ORDER BY e.created_at, e.key)"""

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
    # v2: generic search trials (numbered per run, forward-only status) and per-round search
    # state replace `evaluations` (keyed by run + architecture); its rows become trials.
    # UNIQUE(run_id, "index") also serves lookups by run_id.
    f"""
    CREATE TABLE trials (
        key TEXT PRIMARY KEY, run_id TEXT NOT NULL, "index" INTEGER NOT NULL, x TEXT NOT NULL,
        source TEXT NOT NULL, round INTEGER NOT NULL, status TEXT NOT NULL,
        "values" TEXT NOT NULL, provenance TEXT NOT NULL, fingerprint_id TEXT NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (run_id, "index"));
    CREATE TABLE search_state (
        run_id TEXT NOT NULL, round INTEGER NOT NULL, state TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (run_id, round));
    INSERT INTO trials ({", ".join(f'"{c}"' for c in _TRIAL_COLUMNS)}) {_V1_TRIALS};
    DROP TABLE evaluations;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

# A store of an older version opened read-only (nothing may be written to it) is read through
# TEMP views and tables of the current schema, built from the same queries as the migration.
_READ_COMPAT: dict[int, str] = {
    1: f"""
    CREATE TEMP VIEW trials AS {_V1_TRIALS};
    CREATE TEMP TABLE search_state (
        run_id TEXT NOT NULL, round INTEGER NOT NULL, state TEXT NOT NULL,
        created_at REAL NOT NULL, PRIMARY KEY (run_id, round));
    """,
}

_TABLES = {"op_timings": OpTiming, "latencies": LatencyRecord, "trials": Trial}
TABLES = ("fingerprints", "runs", *_TABLES, "search_state")


class StoreError(HwdistillError, RuntimeError):
    """The store cannot be used as asked (corrupt file, wrong fingerprint, ...)."""


class StoreSchemaError(StoreError):
    """The store's schema is newer than this hwdistill understands."""


class TrialStatusError(StoreError, ValueError):
    """A trial's status may only move forward (pending -> running -> done | failed)."""


def _names(cols: Iterable[str]) -> str:
    """Quoted column names: trials has columns named by SQL keywords ("index", "values")."""
    return ", ".join(f'"{c}"' for c in cols)


def _rank_sql(column: str) -> str:
    """SQL for the forward order of a trial status column (TRIAL_STATUS_RANK)."""
    whens = " ".join(f"WHEN '{s}' THEN {r}" for s, r in TRIAL_STATUS_RANK.items())
    return f"(CASE {column} {whens} ELSE -1 END)"


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
            self._db.create_function("hwdistill_trial_key", 2,
                                     lambda run_id, index: content_key("trial", run_id, index),
                                     deterministic=True)
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
            if version + 1 == SCHEMA_VERSION and version in _READ_COMPAT:
                for stmt in _READ_COMPAT[version].split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)  # TEMP objects: the file is not written
                return
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
        """Every run (search, profile, ...) with its args as JSON text, oldest first."""
        return [dict(r) for r in self._db.execute("SELECT * FROM runs ORDER BY started_at")]

    # -- records ---------------------------------------------------------------------------
    def _put(self, table: str, records: Iterable) -> int:
        rows = [to_row(r) for r in records]
        if not rows:
            return 0
        cols = list(rows[0])
        sql = (f"INSERT OR IGNORE INTO {table} ({_names(cols)}) "
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

    def has(self, table: str, key: str) -> bool:
        self._check_table(table, keyed=True)
        return self._db.execute(f"SELECT 1 FROM {table} WHERE key = ?",
                                (key,)).fetchone() is not None

    def keys(self, table: str, fingerprint_id: str | None = None) -> set[str]:
        self._check_table(table, keyed=True)
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
        if fingerprint_id is None:
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

    # -- search trials and state -----------------------------------------------------------
    def put_trials(self, trials: Iterable[Trial]) -> int:
        """Write a proposed batch in one transaction; returns how many trials were new.

        A trial already stored (same run and index) is left as it is, so re-writing the batch
        after a crash is a no-op; stored with another ``x`` it is an error: the resumed search
        proposed something else. Indices stay dense: a batch leaving a gap is refused.
        """
        trials = list(trials)
        if not trials:
            return 0
        new: dict[str, dict] = {}
        with self._transaction() as db:
            for t in trials:
                row = to_row(t)
                old = db.execute("SELECT x FROM trials WHERE key = ?", (row["key"],)).fetchone()
                old_x = old[0] if old is not None else new.get(row["key"], {}).get("x")
                if old_x is not None and old_x != row["x"]:
                    raise StoreError(
                        f"trial {t.index} of run {t.run_id!r} in {self.path} is stored with "
                        f"x={old_x} but now proposed with x={row['x']}: the resumed search "
                        "does not repeat its proposals. Resume with the same seed and "
                        "configuration, or start a new run id.")
                if old is None:
                    new[row["key"]] = row
            if new:
                rows = list(new.values())
                db.executemany(f"INSERT INTO trials ({_names(rows[0])}) VALUES "
                               f"({', '.join('?' * len(rows[0]))})",
                               [tuple(r.values()) for r in rows])
            for run_id in sorted({t.run_id for t in trials}):
                n, top = db.execute('SELECT COUNT(*), MAX("index") FROM trials WHERE run_id = ?',
                                    (run_id,)).fetchone()
                if n != top + 1:
                    have = {r[0] for r in db.execute(
                        'SELECT "index" FROM trials WHERE run_id = ?', (run_id,))}
                    missing = sorted(set(range(top + 1)) - have)
                    raise StoreError(
                        f"run {run_id!r}: trials are numbered 0, 1, 2, ... but this batch "
                        f"leaves index(es) {missing[:10]} missing (highest {top}); number new "
                        f"trials from the run's trial count")
        return len(new)

    def update_trial(self, run_id: str, index: int, *, status: str,
                     values: dict[str, float] | None = None,
                     provenance: dict[str, Any] | None = None) -> Trial:
        """Move a trial forward (pending -> running -> done | failed) in one transaction.

        ``values`` replace the stored ones when given; ``provenance`` is merged into the
        stored one. ``running`` -> ``running`` is allowed (a retried attempt). A backward move,
        or any move from ``done``/``failed``, raises :class:`TrialStatusError` and changes
        nothing: a finished evaluation is never rewritten.
        """
        if status not in Trial.STATUSES:
            raise InputError(f"status={status!r}; expected one of {Trial.STATUSES}")
        index = operator.index(index)  # a numpy integer is fine, a float is not
        with self._transaction() as db:
            row = db.execute('SELECT * FROM trials WHERE run_id = ? AND "index" = ?',
                             (run_id, index)).fetchone()
            if row is None:
                n = db.execute("SELECT COUNT(*) FROM trials WHERE run_id = ?",
                               (run_id,)).fetchone()[0]
                raise StoreError(f"no trial {index!r} of run {run_id!r} in {self.path} (the "
                                 f"run has {n} trials); write it with put_trials first")
            cur = from_row(Trial, dict(row))
            if not cur.can_become(status):
                raise TrialStatusError(
                    f"trial {index} of run {run_id!r} is {cur.status!r} and cannot become "
                    f"{status!r}: status only moves forward (pending -> running -> done | "
                    "failed) and a finished trial is never rewritten. Re-read the trials "
                    "(store.trials(run_id)) before acting on one.")
            new = dataclasses.replace(
                cur, status=status, values=cur.values if values is None else values,
                provenance={**cur.provenance, **(provenance or {})}, updated_at=time.time())
            r = to_row(new)
            db.execute('UPDATE trials SET status = ?, "values" = ?, provenance = ?, '
                       'updated_at = ? WHERE key = ?',
                       (r["status"], r["values"], r["provenance"], r["updated_at"], r["key"]))
        return new

    def trials(self, run_id: str | None = None, *, status: str | None = None) -> list[Trial]:
        """Trials ordered by run and index, optionally of one run and/or one status."""
        if status is not None and status not in Trial.STATUSES:
            raise InputError(f"status={status!r}; expected one of {Trial.STATUSES}")
        clauses, args = [], []
        for col, v in (("run_id", run_id), ("status", status)):
            if v is not None:
                clauses.append(f"{col} = ?")
                args.append(v)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f'SELECT * FROM trials{where} ORDER BY run_id, "index"', args)
        return [from_row(Trial, dict(r)) for r in rows]

    def put_search_state(self, run_id: str, round: int, state: dict) -> None:
        """Store (or replace) the search's state after ``round`` (e.g. GP hyperparameters)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO search_state VALUES (?, ?, ?, ?)",
                       (run_id, int(round), canonical_json(state), time.time()))

    def search_states(self, run_id: str) -> list[tuple[int, dict]]:
        """Every stored ``(round, state)`` of a run, by round."""
        rows = self._db.execute("SELECT round, state FROM search_state WHERE run_id = ? "
                                "ORDER BY round", (run_id,))
        return [(r[0], json.loads(r[1])) for r in rows]

    def search_state(self, run_id: str) -> tuple[int, dict] | None:
        """The latest round's ``(round, state)`` of a run; None if none was stored."""
        row = self._db.execute("SELECT round, state FROM search_state WHERE run_id = ? "
                               "ORDER BY round DESC LIMIT 1", (run_id,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    # -- inspection, export, import --------------------------------------------------------
    def _check_table(self, table: str, keyed: bool = False) -> None:
        tables = list(_TABLES) if keyed else list(TABLES)
        if table not in tables:
            raise StoreError(f"unknown table {table!r}; tables{' with keys' if keyed else ''} "
                             f"are {tables}")

    def info(self) -> dict:
        """Counts per table and per fingerprint (trials of searches often have none)."""
        out = {"path": str(self.path), "schema_version": self.schema_version,
               "fingerprints": {}, **{t: self._db.execute(f"SELECT COUNT(*) FROM {t}")
                                      .fetchone()[0] for t in ("runs", "trials", "search_state")}}
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
        """Merge another store (e.g. profiled on a TPU VM) into this one; idempotent.

        Returns the new records per table, and ``trials_updated``: trials stored here that the
        other store has further along (a ``running`` trial here that is ``done`` there is
        replaced by it; a trial never moves backward). A store of an older schema is read
        through views of the current one, so it need not be migrated first.
        """
        src = Store(other, readonly=True)
        try:
            counts = {}
            with self._transaction() as db:
                for table in TABLES:
                    rows = list(src.rows(table))
                    counts[table] = 0
                    if not rows:
                        continue
                    cols = list(rows[0])
                    sql = (f"INSERT OR IGNORE INTO {table} ({_names(cols)}) "
                           f"VALUES ({', '.join('?' * len(cols))})")
                    if table == "trials":
                        self._check_same_x(db, rows, other)
                        sql = (f"INSERT INTO trials ({_names(cols)}) "
                               f"VALUES ({', '.join('?' * len(cols))}) "
                               "ON CONFLICT (key) DO UPDATE SET "
                               + ", ".join(f'"{c}" = excluded."{c}"' for c in cols if c != "key")
                               + f" WHERE {_rank_sql('excluded.status')} > "
                                 f"{_rank_sql('trials.status')}")
                    n_before = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    changes = db.total_changes
                    db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
                    changes = db.total_changes - changes
                    counts[table] = db.execute(
                        f"SELECT COUNT(*) FROM {table}").fetchone()[0] - n_before
                    if table == "trials":
                        counts["trials_updated"] = changes - counts[table]
            counts.setdefault("trials_updated", 0)
            return counts
        finally:
            src.close()

    def _check_same_x(self, db, rows: list[dict], other) -> None:
        for r in rows:
            old = db.execute("SELECT x FROM trials WHERE key = ?", (r["key"],)).fetchone()
            if old is not None and old[0] != r["x"]:
                raise StoreError(
                    f"trial {r['index']} of run {r['run_id']!r} is x={old[0]} in {self.path} "
                    f"but x={r['x']} in {other}: the stores hold different searches under one "
                    "run id. Nothing was imported; import into a separate store instead.")
