"""Flash distillation as a proxy: ``flash_K`` distils the student for K steps
(:func:`distill.flash.flash_distill`) and scores it by STS-B Spearman on the context's pairs."""

from __future__ import annotations

import dataclasses

from measurements.errors import InputError

from ..config import StudentConfig
from .base import INITS, ProxyContext, ProxyResult, timed

__all__ = ["flash", "stsb_init", "stsb_proxy_pairs"]


def stsb_proxy_pairs(data_dir=None, n: int = 1500):
    """The STS-B pairs proxies are scored on: ``n`` *train* pairs, every k-th from the start
    (k = len // n), so no proxy sees the dev split full students are scored on."""
    from ..corpus import task_split
    pairs = task_split("stsb", "train", data_dir)
    return pairs[::max(1, len(pairs) // n)][:n]


def stsb_init(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
              seed: int = 0) -> ProxyResult:
    """``stsb_init``: STS-B Spearman of the student at initialisation, no training, on the
    context's pairs (sentences up to 128 tokens, as evaluation reads them). Near 0.55 for any
    random student; for a derived one, what the teacher's slice already knows."""
    if not ctx.stsb_pairs:
        raise InputError("stsb_init needs STS-B pairs: build the context with stsb_pairs=...")
    from tokenizers import Tokenizer

    from ..evaluate import stsb_spearman
    from ..tokenizer import TextEncoder
    from .base import build_student
    # a copy: TextEncoder sets truncation on the tokenizer it wraps
    tok = TextEncoder(Tokenizer.from_str(ctx.tokenizer.tok.to_str()), max_len=128)
    return timed("stsb_init", seed, lambda: stsb_spearman(
        build_student(config, ctx, init, seed), tok, ctx.stsb_pairs))


def flash(config: StudentConfig, ctx: ProxyContext, *, init: str = "random", seed: int = 0,
          steps: int = 100) -> ProxyResult:
    """``flash_<steps>``: STS-B Spearman of the student after ``steps`` steps of distillation
    from ``init`` (``ctx.flash_config``, default flash_distill's, with this init and seed).
    The cost is the whole run: the student's init, compilation, training and scoring."""
    from ..flash import PACKING_MIN_STEPS, flash_distill
    from ..train import DistillConfig

    name = f"flash_{steps}"
    if init not in INITS:
        raise InputError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    if not ctx.stsb_pairs:
        raise InputError(f"{name} needs STS-B pairs to score the student: build the context "
                         "with stsb_pairs=...")
    if not ctx.texts:
        raise InputError(f"{name} needs a distillation corpus: build the context with texts")
    from ..train import RECOMMENDED_LR
    base = ctx.flash_config or DistillConfig(packing=steps >= PACKING_MIN_STEPS,
                                             lr=RECOMMENDED_LR[init])

    def compute():
        # the Distiller initialises as build_student does: init_encoder, then the teacher's
        # tensors (init="teacher") or distill.derive (init="derived", calibrated on the
        # context's texts, and its heads started from the derivation plan)
        dcfg = dataclasses.replace(base, init=init, seed=seed)
        calib = list(ctx.batch_texts) if init == "derived" else None
        r = flash_distill(config, ctx.teacher, ctx.tokenizer, ctx.texts, steps=steps,
                          score_pairs=ctx.stsb_pairs, distill_config=dcfg,
                          calibration_texts=calib)
        return r.stsb
    return timed(name, seed, compute)
