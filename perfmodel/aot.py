"""Ahead-of-time compilation for TPU topologies on a host without a TPU (through libtpu).

``jax.experimental.topologies.get_topology_desc`` gives TPU devices to compile for; libtpu on a
TPU-less host also needs ``TPU_ACCELERATOR_TYPE`` and ``TPU_WORKER_HOSTNAMES`` (measured here,
see docs/architecture.md). The compiled HLO carries the TPU compiler's per-fusion ``estimated_cycles``.
"""

from __future__ import annotations

import functools
import os

import jax

from distill import StudentConfig, Workload
from measurements.errors import HwdistillError, InputError

from .hardware import TPU_TOPOLOGY
from .program import Compiled, abstract_args, compile_serving

__all__ = ["compile_tpu", "AotUnavailableError"]


class AotUnavailableError(HwdistillError, RuntimeError):
    """libtpu is missing or cannot compile for the requested topology."""


@functools.lru_cache(maxsize=None)
def _device(target: str):
    if target not in TPU_TOPOLOGY:
        raise InputError(f"unknown TPU target {target!r}; known: {', '.join(TPU_TOPOLOGY)}")
    topo_name, accel = TPU_TOPOLOGY[target]
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", accel)
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    # compile-only use: several processes (tests, benchmarks) may load libtpu at once
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        from jax.experimental import topologies
        topo = topologies.get_topology_desc(topo_name, "tpu")
    except Exception as e:  # libtpu raises assorted runtime errors
        raise AotUnavailableError(
            f"cannot compile for {target} ({topo_name}) here: {type(e).__name__}: {e}. Install "
            "libtpu (pip install 'hwdistill[tpu]') and keep JAX_PLATFORMS=cpu") from e
    return topo.devices[0]


def compile_tpu(cfg: StudentConfig, wl: Workload, target: str) -> Compiled:
    """Compile the serving program for one chip of ``target`` (e.g. ``tpu-v5e``)."""
    sharding = jax.sharding.SingleDeviceSharding(_device(target))
    return compile_serving(cfg, wl, target, abstract_args(cfg, wl, sharding=sharding))
