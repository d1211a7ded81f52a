"""A disk cache of compiled programs' op lists, so a signature is compiled once per machine.

Predicting an unseen architecture costs compiling its 1/2/3-layer programs (~1-2 s each here);
the op lists those compiles produce depend only on the program, the compiler and its flags,
not on the latency model. They are kept as gzipped JSON under ``$HWDISTILL_CACHE/oplists``
(default ``~/.cache/hwdistill/oplists``), keyed by target, jax/jaxlib/libtpu versions, XLA
flags and the program, so a later search, a resumed one or another user's space pays for a
signature once. A corrupt entry is reported, removed and recompiled; nothing else is lost.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import warnings
from importlib import metadata
from pathlib import Path

from distill import StudentConfig, Workload

from .hlo import HloOp

__all__ = ["OpListCache", "default_cache_dir"]

FORMAT = 1


def default_cache_dir() -> Path | None:
    """``$HWDISTILL_CACHE/oplists`` (``none`` disables), else ``~/.cache/hwdistill/oplists``."""
    env = os.environ.get("HWDISTILL_CACHE")
    if env and env.lower() == "none":
        return None
    return Path(env or "~/.cache/hwdistill").expanduser() / "oplists"


def _versions() -> str:
    out = []
    for d in ("jax", "jaxlib", "libtpu"):
        try:
            out.append(f"{d}={metadata.version(d)}")
        except metadata.PackageNotFoundError:
            pass
    return ",".join(out)


class OpListCache:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.hits = self.misses = 0
        self._salt = json.dumps([FORMAT, _versions(), os.environ.get("XLA_FLAGS", "")])

    @classmethod
    def default(cls) -> "OpListCache | None":
        d = default_cache_dir()
        return None if d is None else cls(d)

    def _path(self, target: str, cfg: StudentConfig, wl: Workload) -> Path:
        key = json.dumps([self._salt, target, cfg.to_dict(), wl.to_dict()], sort_keys=True)
        h = hashlib.sha256(key.encode()).hexdigest()
        return self.dir / target / h[:2] / f"{h}.json.gz"

    def get(self, target: str, cfg: StudentConfig, wl: Workload) -> list[HloOp] | None:
        p = self._path(target, cfg, wl)
        if not p.exists():
            self.misses += 1
            return None
        try:
            ops = [HloOp.from_dict(d) for d in json.loads(gzip.decompress(p.read_bytes()))]
        except Exception as e:   # a truncated or foreign file: say so, drop it, recompile
            warnings.warn(f"op-list cache entry {p} is corrupt ({type(e).__name__}: {e}); "
                          "removed, the program will be compiled again", stacklevel=2)
            p.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return ops

    def put(self, target: str, cfg: StudentConfig, wl: Workload, ops: list[HloOp]) -> None:
        p = self._path(target, cfg, wl)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(gzip.compress(json.dumps([o.to_dict() for o in ops]).encode()))
        tmp.replace(p)   # atomic: a killed process never leaves half an entry
