"""Text data: plain corpora and GLUE-style TSVs, and deterministic length-bucketed batches.

Readers return plain Python records; tokenisation happens in :func:`batches` with the
checkpoint's own tokenizer. Formats follow the files as distributed (see each reader)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from measurements.errors import InputError, MissingError

from .tokenizer import TextEncoder

__all__ = ["Example", "read_corpus", "resolve", "open_text", "read_task", "TASKS", "batches", "batch_indices",
           "split_sentences"]

csv.field_size_limit(1 << 24)


@dataclasses.dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None = None
    label: float | int | None = None


def resolve(path: str | Path) -> Path:
    """``path``, or ``path.gz`` when only the gzipped copy exists (the shipped data is
    gzipped); FileNotFoundError naming both otherwise."""
    p = Path(path)
    if p.is_file():
        return p
    gz = p.with_name(p.name + ".gz")
    if gz.is_file():
        return gz
    raise MissingError(f"no data file {p} (nor {gz.name})")


def open_text(path: str | Path, *, encoding: str = "utf-8", newline: str | None = None):
    """Open a text file or its gzipped copy (see :func:`resolve`)."""
    p = resolve(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding=encoding, newline=newline)
    return open(p, encoding=encoding, newline=newline)


def split_sentences(line: str) -> list[str]:
    """Very plain sentence split (". " boundaries) for long Wikipedia paragraphs."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", line.strip())
    return [p for p in parts if len(p.split()) >= 4]


def read_corpus(path: str | Path, *, sentences: bool = True,
                max_lines: int | None = None) -> list[str]:
    """One document per line; blank lines and WikiText headings (`` = Title = ``) dropped.
    WikiText's ``@-@``-style escapes are undone. With ``sentences`` paragraphs are split."""
    out = []
    with open_text(path) as f:
        for line in f:
            s = line.strip()
            if not s or (s.startswith("=") and s.endswith("=")):
                continue
            s = re.sub(r" @(.)@ ", r"\1", s)
            out.extend(split_sentences(s) if sentences else [s])
            if max_lines and len(out) >= max_lines:
                return out[:max_lines]
    if not out:
        raise InputError(f"corpus {path} has no text lines")
    return out


def _rows(path: Path, *, header: bool, encoding: str = "utf-8") -> Iterator[list[str]]:
    with open_text(path, encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if header:
            next(reader, None)
        yield from reader


def _stsb(path: Path) -> list[Example]:
    # SentEval/STS Benchmark layout: genre, file, year, id, score, s1, s2 [, extra fields]
    # (GLUE's STS-B.tsv has a header with sentence1/sentence2/score instead)
    with open_text(path) as f:
        first = f.readline()
    if first.startswith("index"):
        cols = first.rstrip("\n").split("\t")
        i1, i2, isc = cols.index("sentence1"), cols.index("sentence2"), cols.index("score")
        return [Example(r[i1], r[i2], float(r[isc])) for r in _rows(path, header=True)]
    return [Example(r[5], r[6], float(r[4])) for r in _rows(path, header=False) if len(r) >= 7]


def _labelled(path: Path, a: str, b: str | None, label: str, mapping=None,
              encoding="utf-8") -> list[Example]:
    rows = _rows(path, header=False, encoding=encoding)
    cols = next(rows)
    try:
        ia, il = cols.index(a), cols.index(label)
        ib = cols.index(b) if b else None
    except ValueError:
        raise InputError(f"{path}: expected columns {a!r}, {b!r}, {label!r}; found {cols}") from None
    out = []
    for r in rows:
        if len(r) < len(cols):
            continue
        lab = r[il]
        out.append(Example(r[ia], r[ib] if ib is not None else None,
                           mapping[lab] if mapping else int(lab)))
    return out


TASKS = {
    "sst2": lambda p: _labelled(p, "sentence", None, "label"),
    "stsb": _stsb,
    "mrpc": lambda p: _labelled(p, "#1 String", "#2 String", "Quality", encoding="utf-8-sig"),
    "rte": lambda p: _labelled(p, "sentence1", "sentence2", "label",
                               mapping={"0": 0, "1": 1, "entailment": 0, "not_entailment": 1}),
    "qnli": lambda p: _labelled(p, "question", "sentence", "label",
                                mapping={"entailment": 0, "not_entailment": 1}),
    "cola": lambda p: [Example(r[3], None, int(r[1])) for r in _rows(p, header=False)
                       if len(r) >= 4],
}


def read_task(task: str, path: str | Path) -> list[Example]:
    """Examples of a GLUE-style task file (see :data:`TASKS`)."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    try:
        p = resolve(path)
    except FileNotFoundError:
        raise MissingError(f"{task} file {path} does not exist") from None
    out = TASKS[task](Path(path))
    if not out:
        raise InputError(f"{p} holds no {task} examples: is it the right file?")
    return out


def batch_indices(lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int = 0,
                  bucket: int = 50) -> list[list[int]]:
    """Length-bucketed batches of indices, deterministic in (seed, epoch): shuffle, group in
    chunks of ``bucket`` batches, sort by length inside a chunk (little padding), shuffle the
    batches again. Incomplete batches are dropped (fixed shapes keep jit recompiles rare)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket
    groups = []
    for s in range(0, len(order), chunk):
        idx = sorted(order[s:s + chunk].tolist(), key=lambda i: lengths[i])
        groups += [idx[j:j + batch_size] for j in range(0, len(idx), batch_size)
                   if j + batch_size <= len(idx)]
    return [groups[i] for i in rng.permutation(len(groups))]


def batches(texts: Sequence[str], enc: TextEncoder, batch_size: int, *, seed: int,
            epoch: int = 0, bucket: int = 50) -> Iterator[dict[str, np.ndarray]]:
    """Tokenised batches of :func:`batch_indices` (character length as the length proxy)."""
    for g in batch_indices([len(t) for t in texts], batch_size, seed=seed, epoch=epoch,
                           bucket=bucket):
        yield enc([texts[i] for i in g])
