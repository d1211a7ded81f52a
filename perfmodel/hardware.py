"""Hardware specs: one table with sources, plus a measured probe for the host CPU.

TPU figures are per chip, from Google's Cloud TPU documentation. On TPU, f32 matmuls use
bf16 MXU passes at JAX's default precision, so the bf16 peak is used for both dtypes.
The host CPU has no datasheet here: :func:`probe_cpu` measures a matmul and a streaming add.

A probe reads the host as it is at that moment (this host's two committed models carry 94.5
and 143.7 GFLOP/s, 3.3 and 6.0 GB/s), and the op model's roofline features are computed with
the spec, so two fits of one store with two probes are two different models: two runs of issue
15's goal benchmark, each fitting with its own probe, predicted mobilebert-tiny@16x96 at 360.7
and 386.4 ms; refitting a plain-ratio op scale in three processes moved one held-out
workload's bias from +0.12 to -0.33. So a store keeps the spec its machine was first probed
with (:func:`pin_cpu_spec`, done when profiling starts) and every fit of that machine's
programs uses it (:func:`pinned_cpu_spec`).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings

from measurements.errors import InputError

__all__ = ["HardwareSpec", "TPU_SPECS", "spec_for", "probe_cpu", "TPU_TOPOLOGY",
           "pinned_cpu_spec", "pin_cpu_spec", "CPU_SPEC_RUN"]

CPU_SPEC_RUN = "cpu-spec"        # the store run that keeps a machine's probed spec


@dataclasses.dataclass(frozen=True)
class HardwareSpec:
    name: str
    peak_flops_per_s: float          # dense matmul peak (bf16 on TPU; f32 measured on CPU)
    hbm_bytes_per_s: float           # main-memory bandwidth
    hbm_bytes: float                 # main-memory capacity
    source: str                      # where the numbers come from

    def roofline_s(self, flops: float, nbytes: float) -> float:
        return max(flops / self.peak_flops_per_s, nbytes / self.hbm_bytes_per_s)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_GB = 1e9
_GIB = 2**30
TPU_SPECS: dict[str, HardwareSpec] = {
    "tpu-v2": HardwareSpec("tpu-v2", 45e12, 600 * _GB, 16 * _GIB,
                           "cloud.google.com/tpu/docs/system-architecture-tpu-vm (v2 chip)"),
    "tpu-v3": HardwareSpec("tpu-v3", 123e12, 900 * _GB, 32 * _GIB,
                           "cloud.google.com/tpu/docs/system-architecture-tpu-vm (v3 chip)"),
    "tpu-v4": HardwareSpec("tpu-v4", 275e12, 1200 * _GB, 32 * _GIB,
                           "cloud.google.com/tpu/docs/v4"),
    "tpu-v5e": HardwareSpec("tpu-v5e", 197e12, 819 * _GB, 16 * _GB,
                            "cloud.google.com/tpu/docs/v5e"),
    "tpu-v5p": HardwareSpec("tpu-v5p", 459e12, 2765 * _GB, 95 * _GB,
                            "cloud.google.com/tpu/docs/v5p"),
    "tpu-v6e": HardwareSpec("tpu-v6e", 918e12, 1638 * _GB, 32 * _GB,
                            "cloud.google.com/tpu/docs/v6e"),
}
# libtpu AOT topology names and the TPU_ACCELERATOR_TYPE libtpu wants on a host without a TPU
TPU_TOPOLOGY = {"tpu-v2": ("v2:1x1", "v2-8"), "tpu-v3": ("v3:1x1", "v3-8"),
                "tpu-v4": ("v4:1x1x1", "v4-8"), "tpu-v5e": ("v5e:1x1", "v5litepod-1"),
                "tpu-v5p": ("v5p:1x1x1", "v5p-8"), "tpu-v6e": ("v6e:1x1", "v6e-1")}


def spec_for(target: str) -> HardwareSpec:
    if target in TPU_SPECS:
        return TPU_SPECS[target]
    if target == "cpu":
        return probe_cpu()
    raise InputError(f"unknown hardware target {target!r}; known: cpu, {', '.join(TPU_SPECS)}")


_CPU_CACHE: dict[str, HardwareSpec] = {}


def probe_cpu(n: int = 1024, repeats: int = 5) -> HardwareSpec:
    """Measure this host: f32 matmul FLOP/s (n x n) and streaming bandwidth (64 MiB add).
    Best of ``repeats`` (peaks, not typical values). Cached per process."""
    if "cpu" in _CPU_CACHE:
        return _CPU_CACHE["cpu"]
    import os

    import jax
    import jax.numpy as jnp

    def best(f, *args):
        jax.block_until_ready(f(*args))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times.append(time.perf_counter() - t0)
        return min(times)

    a = jnp.ones((n, n), jnp.float32)
    flops = 2 * n**3 / best(jax.jit(lambda x: x @ x), a)
    v = jnp.ones((16 * 2**20,), jnp.float32)                  # 64 MiB
    bw = 3 * v.nbytes / best(jax.jit(lambda x, y: x + y), v, v)  # 2 reads + 1 write
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    _CPU_CACHE["cpu"] = HardwareSpec("cpu", flops, bw, float(mem),
                                     f"measured by probe_cpu (matmul {n}^3, 64 MiB add)")
    return _CPU_CACHE["cpu"]


def pinned_cpu_spec(store, fingerprint_id: str) -> HardwareSpec | None:
    """The CPU spec kept in ``store`` for ``fingerprint_id`` (the oldest), or None."""
    for r in store.runs():                                  # oldest first
        if (r.get("kind") != CPU_SPEC_RUN or r.get("fingerprint_id") != fingerprint_id
                or r.get("status") != "done"):
            continue
        try:
            spec = HardwareSpec(**json.loads(r["args"]))
        except (TypeError, ValueError) as e:     # a damaged record is skipped, never trusted
            warnings.warn(f"store {getattr(store, 'path', '')}: pinned CPU spec of run "
                          f"{r.get('id')} is unreadable ({e}); skipped", stacklevel=2)
            continue
        if spec.peak_flops_per_s > 0 and spec.hbm_bytes_per_s > 0:
            return spec
    return None


def pin_cpu_spec(store, fingerprint_id: str, spec: HardwareSpec | None = None) -> HardwareSpec:
    """Keep ``spec`` (default: a probe of this host) as ``fingerprint_id``'s spec in ``store``,
    unless one is kept already; returns the kept one. Call it on the machine itself."""
    kept = pinned_cpu_spec(store, fingerprint_id)
    if kept is not None:
        return kept
    spec = spec or probe_cpu()
    run_id = store.start_run(CPU_SPEC_RUN, fingerprint_id=fingerprint_id, args=spec.to_dict())
    store.finish_run(run_id)
    return spec


# -- links, cores and the names profilers use (added for whole-program costing) -------------

@dataclasses.dataclass(frozen=True)
class LinkSpec:
    """A chip's links: ICI (bidirectional, all ports) and the host link (per direction)."""

    name: str
    ici_bytes_per_s: float           # bidirectional inter-chip interconnect, per chip
    host_bytes_per_s: float          # host <-> chip, one direction (nan: not published)
    source: str


TPU_LINKS: dict[str, LinkSpec] = {
    "tpu-v5e": LinkSpec("tpu-v5e", 400 * _GB, float("nan"),
                        "cloud.google.com/tpu/docs/v5e (ICI 400 GBps bidirectional per chip)"),
    "tpu-v5p": LinkSpec("tpu-v5p", 1200 * _GB, float("nan"),
                        "cloud.google.com/tpu/docs/v5p (ICI 1200 GBps bidirectional per chip)"),
    "tpu-v6e": LinkSpec("tpu-v6e", 800 * _GB, 64 * _GB,
                        "cloud.google.com/tpu/docs/v6e (ICI 800 GBps bidirectional per chip; "
                        "host over PCIe Gen5, taken as x16 = 64 GB/s per direction)"),
}
# TensorCores per chip (cloud.google.com/tpu/docs/system-architecture-tpu-vm): v4 and v5p run
# their two cores as one "megacore" JAX device, v2/v3 expose each core as a device
TENSORCORES_PER_CHIP = {"tpu-v2": 2, "tpu-v3": 2, "tpu-v4": 2, "tpu-v5e": 1, "tpu-v5p": 2,
                        "tpu-v6e": 1}
# device_type strings as XProf / the TPU runtime name them -> our target names
PROFILER_DEVICE_NAMES = {"TPU v2": "tpu-v2", "TPU v3": "tpu-v3", "TPU v4": "tpu-v4",
                         "TPU v5 Lite": "tpu-v5e", "TPU v5e": "tpu-v5e", "TPU v5": "tpu-v5p",
                         "TPU v5p": "tpu-v5p", "TPU v6 Lite": "tpu-v6e", "TPU v6e": "tpu-v6e"}


def core_spec(target: str) -> HardwareSpec:
    """Per-TensorCore figures: the chip's divided by its TensorCores."""
    chip = spec_for(target)
    n = TENSORCORES_PER_CHIP.get(target, 1)
    return HardwareSpec(f"{target}-core", chip.peak_flops_per_s / n, chip.hbm_bytes_per_s / n,
                        chip.hbm_bytes / n, f"{chip.source}, divided by {n} TensorCore(s)")


def target_for_device_type(device_type: str) -> str:
    """Our target for a profiler's device name ("TPU v6 Lite" -> "tpu-v6e"; "TPU v5" is v5p)."""
    name = device_type.strip()
    if name in PROFILER_DEVICE_NAMES:
        return PROFILER_DEVICE_NAMES[name]
    raise InputError(f"unknown profiler device type {device_type!r}; known: "
                     f"{', '.join(PROFILER_DEVICE_NAMES)}")


def spec_for_device_type(device_type: str, per: str = "chip") -> HardwareSpec:
    """Spec of a profiler-named device, ``per`` "chip" or "core"."""
    target = target_for_device_type(device_type)
    if per == "chip":
        return spec_for(target)
    if per == "core":
        return core_spec(target)
    raise InputError(f"per must be 'chip' or 'core', not {per!r}")
