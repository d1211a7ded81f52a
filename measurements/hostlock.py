"""A host-wide lock that lets a timing run with every other hwdistill job on the host paused.

Two heavy jobs on one machine spoil each other's timings, yet a long study (distilling dozens
of students) and a search that times candidates both need hours of the same host. Timing takes
this lock *exclusively*; heavy work (a training step, a batch of embeddings, a proxy) takes it
*shared*, one unit at a time. A timing therefore waits for the units in flight to finish (a
step: seconds; a step that compiles: up to a minute) and then runs while every cooperating
process waits at its next unit; between timings the jobs share the cores.

``fcntl.flock`` locks on one file per host (``$HWDISTILL_HOST_LOCK``, default
``/tmp/hwdistill-host.lock``; ``none`` disables). Shared locks do not wait for a queued
exclusive one, so a second file is a turnstile: a timing holds it while it waits, and work
passes through it before taking its shared lock, so a stream of work units cannot starve a
timing. Processes that do not cooperate (anything not hwdistill) are not paused. Nesting is
allowed in one thread: work inside a timing or inside work runs under the outer lock, and a
timing inside a unit of work converts that unit's lock (so it still waits for everyone else).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

__all__ = ["timing", "work", "lock_path"]

_local = threading.local()


def lock_path() -> Path | None:
    """The lock file, or None when disabled (``HWDISTILL_HOST_LOCK=none``)."""
    env = os.environ.get("HWDISTILL_HOST_LOCK", "")
    if env.lower() == "none":
        return None
    return Path(env or "/tmp/hwdistill-host.lock")


def _open(path: Path) -> int:
    # read-only is enough for flock, and opens a lock file another user created (0644 after
    # their umask) as well as our own
    return os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)


def _open_pair(path: Path | None) -> tuple[int, int] | None:
    """(turnstile fd, main fd), or None when disabled or unusable, said once (the host lock is
    a courtesy between jobs: a timing without it is still a timing)."""
    if path is None:
        return None
    try:
        gate = _open(path.with_name(path.name + ".gate"))
    except OSError as e:
        return _unusable(path, e)
    try:
        return gate, _open(path)
    except OSError as e:
        os.close(gate)
        return _unusable(path, e)


def _unusable(path: Path, e: OSError) -> None:
    if not getattr(_local, "warned", False):
        warnings.warn(f"host lock {path} unusable ({e}); timings here will not pause other "
                      "hwdistill jobs. Set HWDISTILL_HOST_LOCK to a writable path, or 'none'",
                      stacklevel=4)
        _local.warned = True
    return None


@contextlib.contextmanager
def _holding(mode: str, main: int, *unlock: tuple[int, int]) -> Iterator[None]:
    """Mark this thread as holding ``main`` in ``mode``; on exit restore the outer state and
    apply ``unlock`` ((fd, flock operation) pairs)."""
    outer = getattr(_local, "held", None)
    _local.held = (mode, main)
    try:
        yield
    finally:
        _local.held = outer
        for fd, op in unlock:
            fcntl.flock(fd, op)


@contextlib.contextmanager
def _opened(fds: tuple[int, int]) -> Iterator[tuple[int, int]]:
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


@contextlib.contextmanager
def timing() -> Iterator[None]:
    """Hold the host exclusively (other hwdistill jobs pause at their next unit of work)."""
    held = getattr(_local, "held", None)          # (mode, fd of the main lock) in this thread
    if held and held[0] == "timing":
        yield
        return
    if held:
        # inside a unit of work of this thread: convert its shared lock. Not through the
        # turnstile: a timing of another process may hold it while it waits for our lock.
        fcntl.flock(held[1], fcntl.LOCK_EX)
        with _holding("timing", held[1], (held[1], fcntl.LOCK_SH)):
            yield
        return
    fds = _open_pair(lock_path())
    if fds is None:
        yield
        return
    with _opened(fds) as (gate, main):
        fcntl.flock(gate, fcntl.LOCK_EX)        # no new work starts from now on
        fcntl.flock(main, fcntl.LOCK_EX)        # the work in flight has finished
        with _holding("timing", main, (main, fcntl.LOCK_UN), (gate, fcntl.LOCK_UN)):
            yield


@contextlib.contextmanager
def work() -> Iterator[None]:
    """One unit of heavy work: waits while a timing holds the host, never delays another unit."""
    fds = None if getattr(_local, "held", None) else _open_pair(lock_path())
    if fds is None:             # inside a unit or a timing already, or no usable lock
        yield
        return
    with _opened(fds) as (gate, main):
        fcntl.flock(gate, fcntl.LOCK_SH)        # pass the turnstile (waits for a timing)
        fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(main, fcntl.LOCK_SH)
        with _holding("work", main, (main, fcntl.LOCK_UN)):
            yield
