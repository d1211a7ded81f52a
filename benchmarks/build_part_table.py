"""Build the op-list table shipped with the package (``perfmodel/oplists_cpu.json.gz``): the op
lists of every reference program (:mod:`perfmodel.parts`) the default search space needs at
the given workloads, so that predicting over the default space compiles nothing on a fresh
clone. Compiles go through a disk cache (``--cache``), so an interrupted build resumes, and
the programs the existing table holds (if built with this jax and these XLA flags) are taken
from it, so a rebuild compiles only what changed.

    python benchmarks/build_part_table.py --workloads 8,128 1,128 --jobs 2

The table's keys carry the jax/jaxlib versions and XLA_FLAGS of this process (like the disk
cache's): with other versions nothing matches and the predictor compiles. Re-run this after a
jax upgrade or a change of the default space, the model code or :mod:`perfmodel.parts`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_info  # noqa: E402

import numpy as np  # noqa: E402

from distill import StudentConfig, Workload  # noqa: E402
from perfmodel import parts  # noqa: E402
from perfmodel.opcache import OpListCache, ShippedOpLists, program_key  # noqa: E402
from search import DEFAULT_SPACE, SearchSpace  # noqa: E402

TABLE = Path(__file__).resolve().parents[1] / "perfmodel" / "oplists_cpu.json.gz"


def signatures(space) -> list[StudentConfig]:
    """Every distinct layer signature (``num_layers=1``) of a space."""
    out = set()
    for x in np.ndindex(*space.sizes):
        try:
            out.add(space.decode(x).config.replace(num_layers=1))
        except Exception:   # an invalid combination of options
            continue
    return sorted(out, key=lambda c: str(c.to_dict()))


def programs_of(sigs, workloads) -> list[tuple[StudentConfig, Workload]]:
    progs = {(p, wl) for s in sigs for p in parts.programs(s) for wl in workloads}
    return sorted(progs, key=lambda pw: (str(pw[1]), str(pw[0].to_dict())))


def _compile_chunk(cache_dir: str, items: list[tuple[dict, dict]]) -> float:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from functools import lru_cache

    import perfmodel.program as program
    from perfmodel.hlo import executed_ops
    # compile_local builds the abstract encoder twice (serving_fn and abstract_args), ~25% of a
    # compile here; it is not mutated, so one per program gives the same HLO (checked: equal
    # op lists, names included) faster
    if not hasattr(program.abstract_encoder, "cache_info"):
        program.abstract_encoder = lru_cache(maxsize=2)(program.abstract_encoder)
    cache = OpListCache(cache_dir)
    t0 = time.perf_counter()
    for c, w in items:
        cfg, wl = StudentConfig.from_dict(c), Workload(**w)
        if cache.get("cpu", cfg, wl) is None:
            ops = executed_ops(program.compile_local(
                cfg, wl, compiler_options=program.ANALYSIS_OPTIONS).hlo_text)
            cache.put("cpu", cfg, wl, ops)
    return time.perf_counter() - t0


def _compile_star(args) -> int:
    _compile_chunk(*args)
    return len(args[1])


def _seed_from_table(path: Path, cache: OpListCache, progs) -> int:
    """Put the programs an existing table already holds (built with this jax and these XLA
    flags) into the cache, so that a rebuild after a change of the program set compiles only
    the new programs."""
    if not path.is_file():
        return 0
    old, n = ShippedOpLists(path), 0
    for c, w in progs:
        if not cache._path("cpu", c, w).exists():
            ops = old.get("cpu", c, w)
            if ops is not None:
                cache.put("cpu", c, w, ops)
                n += 1
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=["8,128", "1,128"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default=None,
                    help="op-list cache directory (default: $HWDISTILL_CACHE/oplists)")
    ap.add_argument("--out", default=str(TABLE))
    ap.add_argument("--space", default=None, help="a space TOML (default: the default space)")
    ap.add_argument("--chunk", type=int, default=16)
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    cache = OpListCache(args.cache) if args.cache else OpListCache.default()
    if cache is None:
        ap.error("a disk cache is needed (HWDISTILL_CACHE=none given): pass --cache DIR")
    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    workloads = [Workload.parse(w) for w in args.workloads]
    t0 = time.time()
    sigs = signatures(space)
    progs = programs_of(sigs, workloads)
    seeded = _seed_from_table(Path(args.out), cache, progs)
    if seeded:
        print(f"{seeded} programs taken from the existing table {args.out} (valid here)")
    todo = [(c, w) for c, w in progs if not cache._path("cpu", c, w).exists()]
    print(f"{len(sigs)} signatures -> {len(progs)} reference programs over {len(workloads)} "
          f"workload(s); {len(todo)} to compile", flush=True)
    chunks = [[(c.to_dict(), w.to_dict()) for c, w in todo[i:i + args.chunk]]
              for i in range(0, len(todo), args.chunk)]
    done = 0
    if chunks:
        # fresh workers now and then (jax keeps per-process caches); imap_unordered so that
        # progress is reported as chunks finish
        with get_context("spawn").Pool(args.jobs, maxtasksperchild=20) as pool:
            work = [(str(cache.dir), ch) for ch in chunks]
            for n in pool.imap_unordered(_compile_star, work):
                done += n
                el = time.time() - t0
                print(f"  {done}/{len(todo)} compiled, {el / 60:.1f} min, eta "
                      f"{el / done * (len(todo) - done) / 60:.1f} min", flush=True)
    table = {}
    for c, w in progs:
        ops = cache.get("cpu", c, w)
        if ops is None:
            raise SystemExit(f"{c} @ {w} is missing from the cache after compiling; re-run")
        table[program_key("cpu", c, w)] = ops
    info = machine_info()
    space_text = space.to_dict()
    built_with = {"date": info["date"], "versions": info["versions"],
                  "cpu_model": info["cpu_model"], "fingerprint": info["fingerprint"],
                  "git_commit": info["git_commit"],
                  "command": "python benchmarks/build_part_table.py " + " ".join(
                      sys.argv[1:] if argv is None else argv),
                  "space": space.name,
                  "space_sha256": hashlib.sha256(repr(space_text).encode()).hexdigest()[:16],
                  "workloads": [str(w) for w in workloads], "signatures": len(sigs),
                  "programs": len(progs), "compiled_now": len(todo),
                  "taken_from_previous_table": seeded,
                  "build_s": round(time.time() - t0, 1)}
    path = ShippedOpLists.write(args.out, "cpu", table, built_with)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {built_with}")


if __name__ == "__main__":
    main()
