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

__all__ = ["FlashResult", "flash_distill"]


@dataclasses.dataclass(frozen=True)
class FlashResult:
    score: float            # STS-B Spearman on the given pairs (or -final loss without pairs)
    final_loss: float
    steps: int
    cost_s: float           # wall time of distillation + scoring


def flash_distill(config: StudentConfig, teacher: Encoder, tokenizer: TextEncoder,
                  texts: Sequence[str], *, steps: int = 200,
                  score_pairs: Sequence[Example] | None = None,
                  distill_config: DistillConfig | None = None) -> FlashResult:
    t0 = time.perf_counter()
    dcfg = dataclasses.replace(distill_config or DistillConfig(), steps=steps, minutes=None,
                               ckpt_every=steps, eval_every=0)
    d = Distiller(config, teacher, tokenizer, dcfg)
    with tempfile.TemporaryDirectory(prefix="hwdistill-flash-") as work:
        res = d.run(texts, work, progress=False)
    score = (stsb_spearman(d.student(), tokenizer, score_pairs) if score_pairs
             else -res.final_loss)
    return FlashResult(score, res.final_loss, res.steps, time.perf_counter() - t0)
