"""The served program of an (architecture, workload): a jitted forward pass that maps token ids
and an attention mask to sentence embeddings, with parameters as arguments (as in serving, so
XLA cannot constant-fold weights).

Lowering uses abstract parameters (shape/dtype structs), so compiling a program for latency
work allocates no weights; only timing needs concrete arrays (:func:`concrete_args`).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from distill import StudentConfig, Workload, abstract_encoder, init_encoder, mean_pool
from measurements import hostlock

__all__ = ["serving_fn", "abstract_args", "concrete_args", "concrete_params", "concrete_inputs",
           "compile_local", "compile_serving", "Compiled", "cost_of", "ANALYSIS_OPTIONS"]


def serving_fn(cfg: StudentConfig):
    """``f(params, input_ids, attention_mask) -> (B, H) embeddings`` for ``cfg``."""
    graphdef, _ = nnx.split(abstract_encoder(cfg))

    def f(params, input_ids, attention_mask):
        model = nnx.merge(graphdef, params)
        out = model(input_ids, attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    return f


def _cast(tree, dtype):
    def cast(x):
        if jnp.issubdtype(x.dtype, jnp.floating):
            return (jax.ShapeDtypeStruct(x.shape, dtype) if isinstance(x, jax.ShapeDtypeStruct)
                    else x.astype(dtype))
        return x
    return jax.tree.map(cast, tree)


def abstract_args(cfg: StudentConfig, wl: Workload, sharding=None):
    """Shape/dtype structs for (params, input_ids, attention_mask)."""
    wl.check(cfg)
    params = nnx.state(abstract_encoder(cfg), nnx.Param)
    params = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding),
                          _cast(params, jnp.dtype(wl.dtype)))
    ids = jax.ShapeDtypeStruct((wl.batch_size, wl.seq_len), jnp.int32, sharding=sharding)
    return params, ids, ids


def concrete_args(cfg: StudentConfig, wl: Workload, seed: int = 0):
    """Randomly initialised parameters and random token ids with a ragged attention mask."""
    wl.check(cfg)
    return (concrete_params(cfg, wl.dtype, seed), *concrete_inputs(cfg, wl, seed))


def concrete_params(cfg: StudentConfig, dtype: str, seed: int = 0):
    """The randomly initialised parameters of :func:`concrete_args`, cast to ``dtype``."""
    return _cast(nnx.state(init_encoder(cfg, seed), nnx.Param), jnp.dtype(dtype))


def concrete_inputs(cfg: StudentConfig, wl: Workload, seed: int = 0):
    """The random token ids and ragged attention mask of :func:`concrete_args`."""
    wl.check(cfg)
    rng = np.random.default_rng(seed)
    ids = rng.integers(min(1000, cfg.vocab_size // 2), cfg.vocab_size, (wl.batch_size, wl.seq_len),
                       dtype=np.int32)
    lengths = rng.integers(wl.seq_len // 2, wl.seq_len + 1, wl.batch_size)
    mask = (np.arange(wl.seq_len)[None] < lengths[:, None]).astype(np.int32)
    return jnp.asarray(ids), jnp.asarray(mask)


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A compiled program with how long lowering/compiling took and XLA's cost analysis."""

    config: StudentConfig
    workload: Workload
    target: str
    executable: object          # jax.stages.Compiled
    lower_s: float
    compile_s: float
    flops: float
    bytes_accessed: float

    @property
    def hlo_text(self) -> str:
        return self.executable.as_text()


def cost_of(executable) -> tuple[float, float]:
    ca = executable.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    ca = ca or {}
    return float(ca.get("flops", np.nan)), float(ca.get("bytes accessed", np.nan))


# For op lists only (prediction), not for timing: LLVM's optimisation level changes the machine
# code, not XLA's HLO passes, so the optimised HLO (fusions, shapes, costs) is the same, and
# compiling is ~2.5x faster (1.19 -> 0.47 s per 3-layer program here; the op lists of sampled
# programs are compared in tests/test_perfmodel.py).
ANALYSIS_OPTIONS = {"xla_backend_optimization_level": 0,
                    "xla_llvm_disable_expensive_passes": True}


def compile_local(cfg: StudentConfig, wl: Workload, *,
                  compiler_options: dict | None = None) -> Compiled:
    """Lower and compile the serving program for the local backend (CPU here).
    ``compiler_options=ANALYSIS_OPTIONS`` compiles faster for op lists; never time that."""
    return compile_serving(cfg, wl, jax.default_backend(), abstract_args(cfg, wl),
                           compiler_options)


def compile_serving(cfg: StudentConfig, wl: Workload, target: str, args,
                    compiler_options: dict | None = None) -> Compiled:
    """Lower and compile the serving program of ``cfg`` for ``args`` (abstract, placed on the
    target's device), timing both steps; as work under the host lock."""
    fn = jax.jit(serving_fn(cfg))
    with hostlock.work():   # seconds of both cores: a timing elsewhere on this host waits
        t0 = time.perf_counter()
        lowered = fn.lower(*args)
        t1 = time.perf_counter()
        exe = lowered.compile(compiler_options=compiler_options) if compiler_options \
            else lowered.compile()
        t2 = time.perf_counter()
    flops, nbytes = cost_of(exe)
    return Compiled(cfg, wl, target, exe, t1 - t0, t2 - t1, flops, nbytes)
