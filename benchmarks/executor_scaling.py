"""Throughput of real proxy-evaluation jobs through the executors, and Ray's per-job overhead.

Jobs: the zero-cost proxies (grad_norm, synflow, naswot, cka) of ``--jobs`` students sampled
from the default space, against the real teacher on real texts; each worker process builds the
teacher context once (cached per process, as a long-lived worker would) and it is warmed before
timing. Runs, in one process each after the other on a quiet machine: the local executor
(serial, in-process), Ray with 1 worker CPU and with 2. Ray's per-job overhead is measured on
10-second CPU-bound jobs (a fixed amount of arithmetic calibrated to take 10 s here): Ray's wall
time per job minus the local one, relative to 10 s (target < 5%).

  python benchmarks/executor_scaling.py --jobs 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

PROXIES = ("grad_norm", "synflow", "naswot", "cka")


def proxy_job(cand_dict: dict, data_dir: str | None) -> dict:
    """The zero-cost proxies of one candidate; the teacher context is built once per worker
    process (search.objectives.proxy_context caches it), as a long-lived worker would."""
    from distill.proxies import compute_proxies
    from search.objectives import AccuracyContext, proxy_context
    from search.space import Candidate
    cand = Candidate.from_dict(cand_dict)
    ctx = proxy_context(AccuracyContext(None, data_dir), seed=0)
    cfg = cand.config.replace(vocab_size=ctx.teacher.config.vocab_size)
    init = "random" if cand.init == "scratch" else "derived"
    return {r.name: r.value for r in compute_proxies(cfg, ctx, PROXIES, init=init, seed=0)}


def cpu_job(n: int) -> float:
    """A fixed amount of arithmetic (no sleeping): n rounds of a 256x256 matrix product."""
    a = np.random.default_rng(0).standard_normal((256, 256)) / 16
    s = 0.0
    for _ in range(n):
        s += float((a @ a).sum())
    return s


def timed_run(executor, jobs) -> float:
    t0 = time.perf_counter()
    res = executor.map(jobs)
    wall = time.perf_counter() - t0
    bad = [r for r in res if not r.ok]
    if bad:
        raise SystemExit(f"{len(bad)} job(s) failed: {bad[0].error}")
    return wall


def main(argv=None):
    import os

    import ray
    from threadpoolctl import threadpool_limits

    from measurements.executor import Job, LocalExecutor, RayExecutor
    from search import DEFAULT_SPACE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--cpu-jobs", type=int, default=4, help="10-second jobs for the overhead")
    p.add_argument("--data-dir", default=os.environ.get("HWDISTILL_DATA"))
    args = p.parse_args(argv)

    cands = [c.to_dict() for c in DEFAULT_SPACE.sample(args.jobs, 7)]
    jobs = lambda tag: [Job(f"{tag}{i}", proxy_job, (c, args.data_dir))  # noqa: E731
                        for i, c in enumerate(cands)]
    # calibrate a 10-second CPU job on one thread
    with threadpool_limits(1):
        t0 = time.perf_counter()
        cpu_job(200)
        per = (time.perf_counter() - t0) / 200
    n10 = int(10.0 / per)
    cjobs = lambda tag: [Job(f"{tag}{i}", cpu_job, (n10,))  # noqa: E731
                         for i in range(args.cpu_jobs)]
    out = {"jobs": args.jobs, "proxies": list(PROXIES), "cpu_job_rounds": n10}

    local = LocalExecutor()
    local.map(jobs("warm")[:1])                     # compile caches, like a warm worker
    out["local_proxy_s"] = timed_run(local, jobs("l"))
    with threadpool_limits(1):
        out["local_cpu_s"] = timed_run(local, cjobs("lc"))
    for workers in (1, 2):
        ray.init(num_cpus=workers, log_to_driver=False, include_dashboard=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1",
                                           "OPENBLAS_NUM_THREADS": "1"}})
        ex = RayExecutor()
        ex.map([Job(f"w{i}", proxy_job, (cands[0], args.data_dir)) for i in range(workers * 2)])
        out[f"ray{workers}_proxy_s"] = timed_run(ex, jobs(f"r{workers}"))
        out[f"ray{workers}_cpu_s"] = timed_run(ex, cjobs(f"rc{workers}"))
        ray.shutdown()
    out["throughput_jobs_per_min"] = {k: 60 * args.jobs / out[f"{k}_proxy_s"]
                                      for k in ("local", "ray1", "ray2")}
    out["speedup_ray2_vs_local"] = out["local_proxy_s"] / out["ray2_proxy_s"]
    out["ray_overhead_per_10s_job"] = (out["ray1_cpu_s"] - out["local_cpu_s"]) / \
        args.cpu_jobs / 10.0
    out["goal_overhead_below_5pct"] = out["ray_overhead_per_10s_job"] < 0.05
    out["command"] = "python benchmarks/executor_scaling.py " + " ".join(sys.argv[1:])
    print({k: v for k, v in out.items() if k != "command"})
    print(f"wrote {write_result('executor_scaling', out)}")


if __name__ == "__main__":
    main()
