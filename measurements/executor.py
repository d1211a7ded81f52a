"""Executors: where evaluation jobs run. The search (the driver) submits jobs and writes their
results to the store itself (one writer); an executor only runs callables and returns what they
returned, or why they failed.

A :class:`Job` is known only as a callable with its arguments, the resources it needs
(``num_cpus``, ``{"TPU": n}``, a custom resource such as ``hw:cpu-<fingerprint>``) and whether
it is *exclusive*: a timing needs the host to itself (two timings at once on one host corrupt
both), so no other job runs beside it. ``key`` makes results idempotent: a job resubmitted with
the same key after a crash is the same job.

- :class:`LocalExecutor` (the default) runs jobs one at a time in this process: what a search
  on one machine wants, and trivially exclusive.
- :class:`ProcessExecutor` runs up to ``workers`` jobs at once in child processes (spawned, so
  each has its own JAX runtime); an exclusive job waits until the others finish and runs
  alone. A child that dies (killed, out of memory) has its job retried up to ``max_retries``
  times with exponential backoff, then reported failed with the cause; results arrive as jobs
  finish, never silently dropped. (A dead child breaks the whole pool, and the pool cannot
  say which job killed it: the jobs that were running in it re-run one at a time, uncharged,
  so a death is only ever charged to the job that was running alone when it happened.)
- :class:`RayExecutor` (``ray`` extra) runs jobs on a Ray cluster, routed by their resources:
  ``num_cpus``, ``{"TPU": n}``, or a custom resource per hardware target that workers offer
  (``ray start --address HEAD --resources '{"hw:cpu-<fingerprint>": 1}'``). An exclusive job
  asks for every CPU of the node it lands on, so nothing runs beside a timing.

Jobs that must run on particular hardware carry ``fingerprint``: the worker reports its own
hardware fingerprint with every result, and a result measured elsewhere is refused (reported as
a failure) rather than returned.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import time
import traceback
from typing import Any, Callable, Iterator, Mapping
from .errors import HwdistillError

__all__ = ["Job", "JobResult", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor",
           "ExecutorError", "run_job"]


class ExecutorError(HwdistillError, RuntimeError):
    """An executor cannot run what it was given (bad job, closed executor)."""


@dataclasses.dataclass(frozen=True)
class Job:
    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resources: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"num_cpus": 1})
    exclusive: bool = False
    fingerprint: str | None = None       # required hardware fingerprint id, if any
    max_retries: int = 2                 # retries after a worker died (not after an exception)

    def __post_init__(self):
        if not callable(self.fn):
            raise ExecutorError(f"job {self.key!r}: fn is a {type(self.fn).__name__}, not "
                                "callable")
        if self.max_retries < 0:
            raise ExecutorError(f"job {self.key!r}: max_retries={self.max_retries} must be >= 0")
        for k, v in self.resources.items():
            if not isinstance(v, (int, float)) or v < 0:
                raise ExecutorError(f"job {self.key!r}: resource {k}={v!r} must be a "
                                    "non-negative number")


@dataclasses.dataclass(frozen=True)
class JobResult:
    key: str
    ok: bool
    value: Any = None
    error: str | None = None             # "ExceptionType: message" (with where, if known)
    attempts: int = 1
    duration_s: float = 0.0
    worker: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _worker_identity() -> dict:
    import os
    import socket
    ident = {"host": socket.gethostname(), "pid": os.getpid()}
    import sys
    if "ray" in sys.modules:
        try:
            import ray
            if ray.is_initialized():
                ident["ray_node"] = ray.get_runtime_context().get_node_id()
        except Exception:   # noqa: BLE001 - identity is best effort
            pass
    try:   # the fingerprint needs JAX; a job that never imported it should not pay for it
        if "jax" in sys.modules:
            from .fingerprint import detect
            ident["fingerprint"] = detect("cpu").id
    except Exception:   # noqa: BLE001 - identity is best effort; the check below needs it
        pass
    return ident


def run_job(job: Job) -> tuple[bool, Any, str | None, float, dict]:
    """Run one job here: (ok, value, error, seconds, worker identity). Exceptions are data."""
    t0 = time.perf_counter()
    try:
        value = job.fn(*job.args, **dict(job.kwargs))
        ok, err = True, None
    except Exception as e:   # noqa: BLE001 - the job's failure is reported, not raised
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        ok, value, err = False, None, f"{type(e).__name__}: {e}{where}"
    ident = _worker_identity()
    if ok and job.fingerprint is not None:
        if "fingerprint" not in ident:
            from .fingerprint import detect
            ident["fingerprint"] = detect("cpu").id
        if ident["fingerprint"] != job.fingerprint:
            ok, value, err = False, None, (
                f"refused: measured on hardware {ident['fingerprint']} but the job is for "
                f"{job.fingerprint}; route it to a worker with resource "
                f"hw:cpu-{job.fingerprint}")
    return ok, value, err, time.perf_counter() - t0, ident


class Executor:
    """submit() jobs, then iterate results() as they finish; close() (or ``with``) ends it."""

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def results(self) -> Iterator[JobResult]:
        raise NotImplementedError

    def pending(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def map(self, jobs) -> list[JobResult]:
        """Run ``jobs`` and return their results in submission order."""
        jobs = list(jobs)
        for j in jobs:
            self.submit(j)
        got = {r.key: r for r in self.results()}
        return [got[j.key] for j in jobs]


class LocalExecutor(Executor):
    """Jobs run in this process, one at a time, when results() is iterated."""

    def __init__(self):
        self._queue: list[Job] = []
        self._keys: set[str] = set()

    def submit(self, job: Job) -> None:
        if job.key in self._keys:
            return                        # idempotent: the same key is the same job
        self._keys.add(job.key)
        self._queue.append(job)

    def pending(self) -> int:
        return len(self._queue)

    def results(self) -> Iterator[JobResult]:
        while self._queue:
            job = self._queue.pop(0)
            ok, value, err, dt, ident = run_job(job)
            self._keys.discard(job.key)
            yield JobResult(job.key, ok, value, err, 1, dt, ident)


@dataclasses.dataclass
class _Entry:
    """A job in a :class:`ProcessExecutor`: how often it started, how many worker deaths it
    was charged with, and whether it must run alone (exclusive, or suspected of a death)."""
    job: Job
    starts: int = 0
    deaths: int = 0
    suspect: bool = False

    @property
    def runs_alone(self) -> bool:
        return self.job.exclusive or self.suspect


class ProcessExecutor(Executor):
    """Up to ``workers`` jobs at once in spawned child processes; exclusive jobs run alone."""

    def __init__(self, workers: int = 2, *, backoff_s: float = 0.5):
        if workers < 1:
            raise ExecutorError(f"workers={workers} must be >= 1")
        self.workers, self.backoff_s = workers, backoff_s
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: cf.ProcessPoolExecutor | None = None
        self._waiting: list[_Entry] = []
        self._running: dict[cf.Future, _Entry] = {}
        self._keys: set[str] = set()

    def _pool_(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=self._ctx)
        return self._pool

    def submit(self, job: Job) -> None:
        if job.key in self._keys:
            return
        self._keys.add(job.key)
        self._waiting.append(_Entry(job))

    def pending(self) -> int:
        return len(self._waiting) + len(self._running)

    def _start_what_fits(self) -> None:
        alone_running = any(e.runs_alone for e in self._running.values())
        while self._waiting and not alone_running and len(self._running) < self.workers:
            entry = self._waiting[0]
            if entry.runs_alone and self._running:
                return                      # wait for the host to be free, keep the order
            self._waiting.pop(0)
            entry.starts += 1
            self._running[self._pool_().submit(run_job, entry.job)] = entry
            alone_running = entry.runs_alone

    def _after_death(self, entries: list[_Entry], error: BaseException) -> list[JobResult]:
        """The pool broke while ``entries`` ran in it. With one job running, that job killed
        its worker: charge it a death, retry it after a backoff or give up. With several, the
        pool cannot say which one did: charge none, and re-run each alone, where a death is
        attributable (so a job is never failed for dying beside another)."""
        given_up = []
        if len(entries) == 1:
            e = entries[0]
            e.deaths += 1
            if e.deaths > e.job.max_retries:
                self._keys.discard(e.job.key)
                given_up.append(JobResult(
                    e.job.key, False, None,
                    f"worker died {e.deaths} time(s) running this job alone "
                    f"({type(error).__name__}: {error}); gave up after "
                    f"{e.job.max_retries} retries", e.starts))
            else:
                time.sleep(self.backoff_s * 2 ** (e.deaths - 1))
                e.suspect = True
                self._waiting.insert(0, e)
        else:
            for e in reversed(entries):
                e.suspect = True
                self._waiting.insert(0, e)
        return given_up

    def results(self) -> Iterator[JobResult]:
        while self._waiting or self._running:
            self._start_what_fits()
            done, _ = cf.wait(list(self._running), return_when=cf.FIRST_COMPLETED)
            lost, error = [], None
            for fut in done:
                entry = self._running.pop(fut)
                try:
                    ok, value, err, dt, ident = fut.result()
                except cf.process.BrokenProcessPool as e:
                    lost.append(entry)
                    error = e
                    continue
                self._keys.discard(entry.job.key)
                yield JobResult(entry.job.key, ok, value, err, entry.starts, dt, ident)
            if error is not None:
                # a dead child breaks the whole pool: every job still running in it is lost
                lost += list(self._running.values())
                self._running.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                yield from self._after_death(lost, error)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Jobs as Ray tasks on a cluster (``address``: ``HOST:PORT``, ``ray://HOST:10001`` or
    ``auto``; None starts a local one). A task whose worker dies is resubmitted after a
    backoff, up to the job's ``max_retries``; then it is reported failed with the cause."""

    def __init__(self, address: str | None = None, *, backoff_s: float = 1.0,
                 init_kwargs: Mapping[str, Any] | None = None):
        try:
            import ray
        except ModuleNotFoundError:
            raise ExecutorError("the Ray executor needs Ray: pip install 'hwdistill[ray]'") \
                from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                     **dict(init_kwargs or {}))
        self.backoff_s = backoff_s
        self._task = ray.remote(run_job)
        self._running: dict[Any, tuple[Job, int]] = {}
        self._keys: set[str] = set()

    def _options(self, job: Job) -> dict:
        res = dict(job.resources)
        num_cpus = float(res.pop("num_cpus", 1))
        num_gpus = float(res.pop("num_gpus", 0))
        if job.exclusive:   # the whole node: the largest CPU count among nodes that fit
            fits = [n for n in self._ray.nodes() if n.get("Alive") and all(
                n["Resources"].get(k, 0) >= v for k, v in res.items())]
            if not fits:
                raise ExecutorError(f"job {job.key!r}: no alive Ray node offers {res}; start a "
                                    "worker with ray start --resources '{...}'")
            num_cpus = max(n["Resources"].get("CPU", 1) for n in fits)
        return {"num_cpus": num_cpus, "num_gpus": num_gpus, "resources": res,
                "max_retries": 0}

    def _launch(self, job: Job, attempts: int) -> None:
        ref = self._task.options(**self._options(job)).remote(job)
        self._running[ref] = (job, attempts + 1)

    def submit(self, job: Job) -> None:
        if job.key in self._keys:
            return
        self._keys.add(job.key)
        self._launch(job, 0)

    def pending(self) -> int:
        return len(self._running)

    def results(self) -> Iterator[JobResult]:
        ray = self._ray
        died = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.LocalRayletDiedError, ray.exceptions.TaskUnschedulableError)
        while self._running:
            done, _ = ray.wait(list(self._running), num_returns=1)
            for ref in done:
                job, attempts = self._running.pop(ref)
                try:
                    ok, value, err, dt, ident = ray.get(ref)
                except died as e:
                    if attempts <= job.max_retries:
                        time.sleep(self.backoff_s * 2 ** (attempts - 1))
                        self._launch(job, attempts)
                        continue
                    ok, value, err, dt, ident = (False, None, f"worker died {attempts} "
                                                 f"time(s) running this job ({type(e).__name__}"
                                                 f"); gave up after {job.max_retries} retries",
                                                 0.0, {})
                except ray.exceptions.RayError as e:
                    ok, value, err, dt, ident = False, None, f"{type(e).__name__}: {e}", 0.0, {}
                self._keys.discard(job.key)
                yield JobResult(job.key, ok, value, err, attempts, dt, ident)

    def close(self) -> None:
        for ref in list(self._running):
            self._ray.cancel(ref, force=True)
        self._running.clear()
