"""Models and accuracy: the flax BERT teacher and MobileBERT-style students, checkpoints,
tokenisation, data, distillation and evaluation. Imports nothing else of hwdistill."""

from .checkpoint import CheckpointError, default_teacher_dir, load_encoder, save_encoder
from .config import PRESETS, StudentConfig, Workload, load_arch
from .model import Encoder, EncoderOutput, abstract_encoder, count_params, init_encoder, mean_pool
from .tokenizer import TextEncoder, load_tokenizer

__all__ = ["CheckpointError", "Encoder", "EncoderOutput", "PRESETS", "StudentConfig",
           "TextEncoder", "Workload", "abstract_encoder", "count_params", "default_teacher_dir",
           "init_encoder", "load_arch", "load_encoder", "load_tokenizer", "mean_pool",
           "save_encoder"]
