"""Op lists of compiled programs, kept so that a program is compiled once per machine.

Predicting an unseen architecture costs compiling programs (~0.3-0.6 s each here); the op
lists those compiles produce depend only on the program, the compiler and its flags, not on the
latency model. Two stores hold them, both keyed by :func:`program_key` (target, the compiler
versions that matter for it, XLA flags, the program):

- :class:`OpListCache`, gzipped JSON under ``$HWDISTILL_CACHE/oplists`` (default
  ``~/.cache/hwdistill/oplists``), written as programs are compiled, so a later search, a
  resumed one or another user's space pays for a program once. A corrupt entry is reported,
  removed and recompiled; nothing else is lost.
- :class:`ShippedOpLists`, a read-only table shipped with the package
  (``perfmodel/oplists_cpu.json.gz``): the reference programs of the default search space
  (:mod:`perfmodel.parts`) at its workloads, built by ``benchmarks/build_part_table.py``. Its
  keys carry the versions it was built with, so after a jax/jaxlib upgrade (or other XLA flags)
  nothing in it matches and programs are compiled again, never read stale.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import warnings
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from distill import StudentConfig, Workload

from .hlo import HloOp

__all__ = ["OpListCache", "ShippedOpLists", "default_cache_dir", "program_key", "salt"]

FORMAT = 2


def default_cache_dir() -> Path | None:
    """``$HWDISTILL_CACHE/oplists`` (``none`` disables), else ``~/.cache/hwdistill/oplists``."""
    env = os.environ.get("HWDISTILL_CACHE")
    if env and env.lower() == "none":
        return None
    return Path(env or "~/.cache/hwdistill").expanduser() / "oplists"


@lru_cache(maxsize=None)
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def salt(target: str) -> str:
    """What a program's op list depends on besides the program: the cache format, the
    compiler (jax, jaxlib; libtpu for TPU targets) and ``XLA_FLAGS``."""
    dists = ("jax", "jaxlib") + (("libtpu",) if target.startswith("tpu") else ())
    vers = ",".join(f"{d}={_version(d)}" for d in dists if _version(d))
    return json.dumps([FORMAT, vers, os.environ.get("XLA_FLAGS", "")])


def program_key(target: str, cfg: StudentConfig, wl: Workload) -> str:
    """The hex key of a program's op list (sha256 of the salt, target and program)."""
    return _key(salt(target), target, cfg, wl)


@lru_cache(maxsize=1 << 16)
def _key(salt_: str, target: str, cfg: StudentConfig, wl: Workload) -> str:
    key = json.dumps([salt_, target, cfg.to_dict(), wl.to_dict()], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


class OpListCache:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.hits = self.misses = 0

    @classmethod
    def default(cls) -> "OpListCache | None":
        d = default_cache_dir()
        return None if d is None else cls(d)

    def _path(self, target: str, cfg: StudentConfig, wl: Workload) -> Path:
        h = program_key(target, cfg, wl)
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


# -- the shipped table ----------------------------------------------------------------------------
TABLE_FORMAT = 1
_KEY_CHARS = 32          # 128 bits of the sha256 key: no collisions among a few thousand programs


def _pack(op: HloOp) -> dict:
    """An op without its per-program name and metadata (so equal ops are stored once), with
    the fused opcodes run-length encoded."""
    d = op.to_dict()
    d["name"] = d["metadata_op"] = ""
    runs: list[list] = []
    for o in d["fused_opcodes"]:
        if runs and runs[-1][0] == o:
            runs[-1][1] += 1
        else:
            runs.append([o, 1])
    d["fused_opcodes"] = runs
    return d


def _unpack(d: dict) -> HloOp:
    d = dict(d)
    d["fused_opcodes"] = [o for o, n in d["fused_opcodes"] for _ in range(n)]
    return HloOp.from_dict(d)


class ShippedOpLists:
    """Read-only op lists shipped with the package, looked up by :func:`program_key`.
    Loaded on first use; ``info`` says what it was built with and whether it applies here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.hits = self.misses = 0
        self._data: dict | None = None
        self._ops: list[HloOp | None] = []
        self._valid: dict[str, bool] = {}

    @classmethod
    def default(cls, target: str = "cpu") -> "ShippedOpLists | None":
        p = resources.files("perfmodel").joinpath(f"oplists_{target}.json.gz")
        return cls(Path(str(p))) if p.is_file() else None

    def _load(self) -> dict:
        if self._data is None:
            try:
                data = json.loads(gzip.decompress(self.path.read_bytes()))
                if data.get("format") != TABLE_FORMAT:
                    raise ValueError(f"table format {data.get('format')}, expected "
                                     f"{TABLE_FORMAT}")
            except Exception as e:
                warnings.warn(f"shipped op-list table {self.path} is unreadable "
                              f"({type(e).__name__}: {e}); programs will be compiled",
                              stacklevel=3)
                data = {"format": TABLE_FORMAT, "salts": {}, "ops": [], "programs": {}}
            self._data = data
            self._ops = [None] * len(data["ops"])
        return self._data

    @property
    def info(self) -> dict:
        """Build metadata (versions, machine, workloads, counts) and whether it applies."""
        d = self._load()
        return {**d.get("built_with", {}), "programs": len(d["programs"]),
                "unique_ops": len(d["ops"]),
                "valid_here": {t: s == salt(t) for t, s in d["salts"].items()}}

    def _applies(self, target: str) -> bool:
        ok = self._valid.get(target)
        if ok is None:
            ok = self._valid[target] = self._load()["salts"].get(target) == salt(target)
        return ok

    def unique_ops(self) -> list[HloOp]:
        """Every distinct op of the table (e.g. to predict them in one batch)."""
        self._load()
        for i, op in enumerate(self._ops):
            if op is None:
                self._ops[i] = _unpack(self._data["ops"][i])
        return list(self._ops)

    def get(self, target: str, cfg: StudentConfig, wl: Workload) -> list[HloOp] | None:
        if not self._applies(target):
            self.misses += 1
            return None
        idx = self._data["programs"].get(program_key(target, cfg, wl)[:_KEY_CHARS])
        if idx is None:
            self.misses += 1
            return None
        self.hits += 1
        out = []
        for i in idx:
            op = self._ops[i]
            if op is None:
                op = self._ops[i] = _unpack(self._data["ops"][i])
            out.append(op)
        return out

    @staticmethod
    def write(path: str | Path, target: str, programs: dict[str, list[HloOp]],
              built_with: dict) -> Path:
        """Write a table of ``{program_key: ops}`` (keys from :func:`program_key` in this
        process, so they carry this process's versions)."""
        ops: list[dict] = []
        index: dict[str, int] = {}
        progs = {}
        for key, lst in sorted(programs.items()):
            ids = []
            for op in lst:
                d = _pack(op)
                s = json.dumps(d, sort_keys=True)
                if s not in index:
                    index[s] = len(ops)
                    ops.append(d)
                ids.append(index[s])
            progs[key[:_KEY_CHARS]] = ids
        data = {"format": TABLE_FORMAT, "salts": {target: salt(target)},
                "built_with": built_with, "ops": ops, "programs": progs}
        p = Path(path)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 9))
        tmp.replace(p)
        return p
