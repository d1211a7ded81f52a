"""Accuracy proxies: cheap stand-ins for the accuracy of a fully distilled student.

Every proxy is one function with the same signature,

    proxy(config: StudentConfig, ctx: ProxyContext, *, init="random", seed=0) -> ProxyResult

computed on the student at initialisation (``init``: ``random``, ``teacher`` or ``derived``,
see :func:`~distill.proxies.base.build_student`) against the real teacher on the real
batches of ``ctx`` (:func:`make_context`). ``ProxyResult.cost_s`` is the proxy's own wall
time: the student's init, compilation and computation, not the shared context.

=============  =====================================================================
``params``     non-embedding parameters (:mod:`.static`)
``flops``      forward matmul FLOPs per sequence at ``ctx.seq_len`` (:mod:`.static`)
``grad_norm``  sum of dense-layer gradient norms of the distillation loss (:mod:`.zero_cost`)
``snip``       sum |g * w| over dense-layer weights (:mod:`.zero_cost`)
``synflow``    log synaptic flow, all-ones input, |weights| (:mod:`.zero_cost`)
``naswot``     log-determinant of the FFN activation-pattern kernel (:mod:`.zero_cost`)
``cka``        linear CKA of student and teacher sentence embeddings (:mod:`.similarity`)
``stsb_init``  STS-B Spearman of the student at initialisation, no training (:mod:`.flash`)
``flash_K``    STS-B Spearman after K steps of flash distillation (:mod:`.flash`)
=============  =====================================================================

Importing this package loads no ML library; a proxy's module is imported on first use.
"""

from __future__ import annotations

import contextlib
import functools
import re
from importlib import import_module
from typing import Callable, Iterable

from measurements import hostlock
from measurements.errors import InputError

from .base import INITS, ProxyContext, ProxyResult, build_student, make_context
from .static import forward_flops, non_embedding_params, param_count

__all__ = ["ProxyResult", "ProxyContext", "make_context", "build_student", "get_proxy",
           "compute_proxies", "parse_names", "PROXIES", "ZERO_COST", "INITS", "forward_flops",
           "non_embedding_params", "param_count"]

# name: (module, function, one-line description)
PROXIES: dict[str, tuple[str, str, str]] = {
    "params": ("static", "params", "non-embedding parameter count"),
    "flops": ("static", "flops", "forward matmul FLOPs per sequence"),
    "grad_norm": ("zero_cost", "grad_norm", "sum of dense-layer gradient norms"),
    "snip": ("zero_cost", "snip", "sum |grad * weight| over dense layers"),
    "synflow": ("zero_cost", "synflow", "log synaptic flow (all-ones input, |weights|)"),
    "naswot": ("zero_cost", "naswot", "log det of the FFN activation-pattern kernel"),
    "cka": ("similarity", "cka", "linear CKA of student vs teacher sentence embeddings"),
    "stsb_init": ("flash", "stsb_init", "STS-B Spearman of the student at init (no training)"),
}
ZERO_COST = tuple(PROXIES)              # everything but flash: seconds, not minutes
_FLASH = re.compile(r"flash_(\d+)$")

Proxy = Callable[..., ProxyResult]


def _known() -> str:
    return ", ".join(PROXIES) + ", flash_K (K distillation steps, e.g. flash_50)"


def get_proxy(name: str) -> Proxy:
    """The proxy function called ``name`` (``flash_K``: flash distillation for K steps)."""
    m = _FLASH.match(name)
    if m:
        steps = int(m.group(1))
        if steps <= 0:
            raise InputError(f"proxy {name!r}: flash needs a positive number of steps")
        from .flash import flash
        return functools.partial(flash, steps=steps)
    if name not in PROXIES:
        raise InputError(f"unknown proxy {name!r}; known proxies: {_known()}")
    module, fn, _ = PROXIES[name]
    return getattr(import_module(f".{module}", __name__), fn)


def parse_names(spec: str | Iterable[str]) -> list[str]:
    """``"params,flops,flash_50"`` (or a list) -> validated names, duplicates dropped."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec)]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError(f"no proxy named; known proxies: {_known()}")
    for n in names:
        if n not in PROXIES and not _FLASH.match(n):
            raise InputError(f"unknown proxy {n!r}; known proxies: {_known()}")
    return names


def compute_proxies(config, ctx: ProxyContext, names: str | Iterable[str] = ZERO_COST, *,
                    init: str = "random", seed: int = 0,
                    on_result: Callable[[ProxyResult], None] | None = None
                    ) -> list[ProxyResult]:
    """Every named proxy of ``config``, in order (names are checked before anything runs).

    The student is built once, untimed, before the first proxy: JAX compiles each eager
    operation of the initialisation once per process and shape (~60 small programs, 1-4 s),
    which would otherwise be charged to whichever proxy runs first (measured: grad_norm 7.4 s
    first, 2.8 s after the others). Each proxy still pays its own student's init and the
    compilation of its own program. ``grad_norm`` and ``snip`` asked together are computed
    from one gradient (:func:`~distill.proxies.zero_cost.grad_norm_and_snip`, half the joint
    cost each), at the place of the first of them."""
    if init not in INITS:
        raise InputError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    names = parse_names(names)
    fns = [get_proxy(n) for n in names]
    if any(n not in ("params", "flops") for n in names):
        build_student(config, ctx, init, seed)
    joint = {"grad_norm", "snip"} <= set(names)
    done: dict[str, ProxyResult] = {}
    out = []
    for name, fn in zip(names, fns):
        if name not in done:
            # a zero-cost proxy is one unit of work (a timing elsewhere waits for it); a
            # flash proxy is many: its distillation steps and embedding batches lock one by one
            with contextlib.nullcontext() if name.startswith("flash") else hostlock.work():
                if joint and name in ("grad_norm", "snip"):
                    from .zero_cost import grad_norm_and_snip
                    done.update((r.name, r) for r in grad_norm_and_snip(config, ctx,
                                                                        init=init, seed=seed))
                else:
                    done[name] = fn(config, ctx, init=init, seed=seed)
        out.append(done[name])
        if on_result is not None:
            on_result(done[name])
    return out
