"""Tokenisation with a checkpoint's own tokenizer files (tokenizers library, no transformers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer
from measurements.errors import InputError, MissingError

__all__ = ["TextEncoder", "load_tokenizer"]


class TextEncoder:
    """Batched, padded tokenisation: ``enc(["a", "b"]) -> {input_ids, attention_mask,
    token_type_ids}`` as int32 arrays of shape (B, T). ``T`` is the longest sequence rounded up to
    ``pad_multiple`` (few distinct shapes keep jit recompilations rare), capped at ``max_len``."""

    def __init__(self, tokenizer: Tokenizer, *, max_len: int = 128, pad_multiple: int = 16):
        if max_len <= 0 or pad_multiple <= 0:
            raise InputError(f"max_len={max_len} and pad_multiple={pad_multiple} must be > 0")
        self.tok = tokenizer
        self.max_len, self.pad_multiple = max_len, pad_multiple
        self.tok.no_padding()
        self.tok.enable_truncation(max_len)
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 *, length: int | None = None) -> dict[str, np.ndarray]:
        if isinstance(texts, str):
            raise TypeError("pass a list of strings, not a single string")
        if pairs is not None and len(pairs) != len(texts):
            raise InputError(f"{len(texts)} texts but {len(pairs)} pairs")
        encs = (self.tok.encode_batch(list(zip(texts, pairs))) if pairs is not None
                else self.tok.encode_batch(list(texts)))
        longest = max((len(e.ids) for e in encs), default=1)
        t = length or min(self.max_len, -(-longest // self.pad_multiple) * self.pad_multiple)
        out = {k: np.zeros((len(encs), t), np.int32)
               for k in ("input_ids", "attention_mask", "token_type_ids")}
        out["input_ids"][:] = self.pad_id
        for i, e in enumerate(encs):
            n = min(len(e.ids), t)
            out["input_ids"][i, :n] = e.ids[:n]
            out["attention_mask"][i, :n] = 1
            out["token_type_ids"][i, :n] = e.type_ids[:n]
        return out


def load_tokenizer(directory: str | Path, *, max_len: int = 128) -> TextEncoder:
    """From ``tokenizer.json`` if present, else ``vocab.txt`` (BERT WordPiece, lowercase per
    ``tokenizer_config.json``)."""
    d = Path(directory)
    if (d / "tokenizer.json").is_file():
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    elif (d / "vocab.txt").is_file():
        lower = True
        if (d / "tokenizer_config.json").is_file():
            lower = json.loads((d / "tokenizer_config.json").read_text()).get("do_lower_case", True)
        tok = BertWordPieceTokenizer(str(d / "vocab.txt"), lowercase=lower)._tokenizer
    else:
        raise MissingError(f"{d} has no tokenizer.json or vocab.txt; copy the teacher's "
                           "tokenizer files into the checkpoint directory")
    return TextEncoder(tok, max_len=max_len)
