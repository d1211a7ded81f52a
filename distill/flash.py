"""Flash distillation (AutoDistill, Zhang et al. 2022, Sec. 3.3): a short, budgeted
distillation whose result stands in for the accuracy of a fully distilled student."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import Sequence

from .config import StudentConfig
from .data import Example
from .evaluate import stsb_spearman
from .model import Encoder
from .tokenizer import TextEncoder
from .train import DistillConfig, Distiller

__all__ = ["FlashResult", "flash_distill", "PACKING_MIN_STEPS"]

PACKING_MIN_STEPS = 300


@dataclasses.dataclass(frozen=True)
class FlashResult:
    stsb: float | None      # STS-B Spearman on the given pairs; None when none were given
    final_loss: float       # the distillation loss at the last step
    steps: int
    cost_s: float           # wall time of distillation + scoring


def flash_distill(config: StudentConfig, teacher: Encoder, tokenizer: TextEncoder,
                  texts: Sequence[str], *, steps: int = 200,
                  score_pairs: Sequence[Example] | None = None,
                  distill_config: DistillConfig | None = None,
                  calibration_texts: Sequence[str] | None = None) -> FlashResult:
    """Distil ``config`` for ``steps``; with ``score_pairs`` score it by STS-B Spearman
    (``stsb``; None without pairs). ``cost_s`` counts compilation too.
    ``calibration_texts`` go to the :class:`Distiller` (its init="derived" calibration batch).

    Without ``distill_config``, batches are packed only for runs of at least
    ``PACKING_MIN_STEPS`` steps: a packed run meets up to ~16 batch shapes (4 padded), each
    compiled once, and on short runs compiling outweighs the faster steps. Measured here for
    the 4L/H256 student, two runs each: 200 steps cost 158 and 149 s packed vs 145 and 141 s
    padded (the same score, 0.7458, both ways);
    a packed step saves ~0.17 s, so packing pays from about 300 steps."""
    t0 = time.perf_counter()
    base = distill_config or DistillConfig(packing=steps >= PACKING_MIN_STEPS)
    dcfg = dataclasses.replace(base, steps=steps, minutes=None, ckpt_every=steps, eval_every=0)
    kw = {"calibration_texts": calibration_texts} if calibration_texts is not None else {}
    d = Distiller(config, teacher, tokenizer, dcfg, **kw)
    with tempfile.TemporaryDirectory(prefix="hwdistill-flash-") as work:
        res = d.run(texts, work, progress=False)
    stsb = stsb_spearman(d.student(), tokenizer, score_pairs) if score_pairs else None
    return FlashResult(stsb, res.final_loss, res.steps, time.perf_counter() - t0)
