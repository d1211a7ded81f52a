"""Models and accuracy: the flax BERT teacher and MobileBERT-style students, checkpoints,
tokenisation, data, distillation and evaluation. Imports nothing else of hwdistill.

The architecture types (:class:`StudentConfig`, :class:`Workload`, presets) import no ML
library: describing a candidate, as the search and its workers do thousands of times, must
not load jax/flax (1.5 s and ~300 MB). The model, checkpoint and tokenizer names are loaded
on first use (PEP 562).
"""

from importlib import import_module

from .config import PRESETS, StudentConfig, Workload, load_arch

_LAZY = {
    "CheckpointError": ".checkpoint", "default_teacher_dir": ".checkpoint",
    "load_encoder": ".checkpoint", "save_encoder": ".checkpoint",
    "Encoder": ".model", "EncoderOutput": ".model", "abstract_encoder": ".model",
    "count_params": ".model", "init_encoder": ".model", "mean_pool": ".model",
    "TextEncoder": ".tokenizer", "load_tokenizer": ".tokenizer",
}

__all__ = ["CheckpointError", "Encoder", "EncoderOutput", "PRESETS", "StudentConfig",
           "TextEncoder", "Workload", "abstract_encoder", "count_params", "default_teacher_dir",
           "init_encoder", "load_arch", "load_encoder", "load_tokenizer", "mean_pool",
           "save_encoder"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
