"""The distillation corpus and the evaluation files, located under a data directory laid out
as stsb/, sst2/, wikitext2_raw/, ... (GLUE-style files; see README)."""

from __future__ import annotations

import os
from pathlib import Path

from measurements.errors import InputError, MissingError

from .data import read_corpus, read_task, resolve, split_sentences

__all__ = ["data_dir", "distillation_pairs", "distillation_texts", "task_split", "SHIPPED_DATA"]

# STS-B (train, dev) and WikiText-2 raw (valid, test), gzipped, with licences: see its README
SHIPPED_DATA = Path(__file__).parent / "datasets"

_FILES = {("stsb", "train"): "stsb/sts-train.csv", ("stsb", "dev"): "stsb/sts-dev.csv",
          ("sst2", "train"): "sst2/train.tsv", ("sst2", "dev"): "sst2/dev.tsv",
          ("mrpc", "train"): "mrpc/train.tsv", ("mrpc", "dev"): "mrpc/dev.tsv",
          ("rte", "dev"): "rte/dev.tsv", ("qnli", "dev"): "qnli/dev.tsv"}


def data_dir(path: str | Path | None = None) -> Path:
    """``path``, else $HWDISTILL_DATA, else the data shipped with the package
    (:data:`SHIPPED_DATA`: STS-B train/dev and WikiText-2, enough for distillation and the
    STS-B evaluation; SST-2 and other GLUE tasks need a folder of your own)."""
    if path is not None:
        if not Path(path).is_dir():
            raise MissingError(f"data directory {path} does not exist; pass --data-dir DIR "
                               "with stsb/, sst2/ and wikitext2_raw/ inside")
        return Path(path)
    env = os.environ.get("HWDISTILL_DATA")
    if env:
        if not Path(env).is_dir():
            raise MissingError(f"HWDISTILL_DATA={env} is not a directory; point it (or "
                               "--data-dir) to a folder with stsb/, sst2/, wikitext2_raw/")
        return Path(env)
    return SHIPPED_DATA


_WIKITEXT = ("wikitext2_raw/wiki.valid.raw", "wikitext2_raw/wiki.test.raw")


def _wikitext_paragraphs(d: Path) -> list[str]:
    """The WikiText-2 paragraphs under ``d`` (the data folder ships the valid and test files),
    WikiText's escapes undone and headings dropped."""
    return [p for f in _WIKITEXT if _exists(d / f)
            for p in read_corpus(d / f, sentences=False)]


def _exists(path: Path) -> bool:
    try:
        resolve(path)
        return True
    except FileNotFoundError:
        return False


def task_split(task: str, split: str, root: str | Path | None = None):
    key = (task, split)
    if key not in _FILES:
        raise InputError(f"no {split} split of {task!r} known; available: {sorted(_FILES)}")
    d = data_dir(root)
    if d == SHIPPED_DATA and not _exists(d / _FILES[key]):
        raise MissingError(
            f"{task} {split} is not among the data shipped with hwdistill (STS-B and WikiText-2 "
            f"only); pass --data-dir DIR (or set HWDISTILL_DATA) to a folder holding "
            f"{_FILES[key]}")
    return read_task(task, d / _FILES[key])


def distillation_texts(root: str | Path | None = None, *, max_texts: int | None = None):
    """Unlabelled text for task-agnostic distillation: WikiText-2 sentences plus the
    *sentences* (no labels) of the STS-B and SST-2 train splits (SST-2 is not shipped: from
    the shipped data, WikiText-2 and STS-B only). Dev sets are never used."""
    d = data_dir(root)
    texts = [s for para in _wikitext_paragraphs(d) for s in split_sentences(para)]
    for e in task_split("stsb", "train", d):
        texts += [e.text_a, e.text_b]
    if d != SHIPPED_DATA or _exists(d / _FILES[("sst2", "train")]):
        texts += [e.text_a for e in task_split("sst2", "train", d)]
    texts = list(dict.fromkeys(t for t in texts if t.strip()))   # dedupe, keep order
    return texts[:max_texts] if max_texts else texts


def distillation_pairs(root: str | Path | None = None, *, max_pairs: int | None = None):
    """Unlabelled sentence pairs, so a student also learns how the teacher reads two segments
    (``[CLS] a [SEP] b [SEP]``, token types 0/1) as GLUE pair tasks present them: consecutive
    sentences of a WikiText-2 paragraph, plus the pairs (no labels) of the STS-B and MRPC train
    splits. Dev sets are never used."""
    d = data_dir(root)
    pairs = []
    for para in _wikitext_paragraphs(d):
        sents = split_sentences(para)
        pairs += list(zip(sents, sents[1:]))
    for task in ("stsb", "mrpc"):
        try:
            pairs += [(e.text_a, e.text_b) for e in task_split(task, "train", d)]
        except FileNotFoundError:
            pass
    pairs = list(dict.fromkeys((a, b) for a, b in pairs if a.strip() and b.strip()))
    return pairs[:max_pairs] if max_pairs else pairs
