"""The scoring step on executors (Spark mapInPandas), torch-free.

Input batches carry prompts-table rows (user_id, prompt, entity_spans, sequence_item_ids,
seen_item_ids); each user comes out as up to top_k rows (rank, item_id, score, explanation for the
first explain_k) or as one row with an `error` (the driver quarantines it with that reason).

The bundle is loaded once per Python worker process: `scorer_for` keeps a process-level cache keyed
by the bundle's sha256 and device settings, and each real load is counted in the job's accumulator,
so the driver can check "one load per worker per bundle" (Spark reuses Python workers across tasks,
`spark.python.worker.reuse`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd

from rec_udf.errors import BundleError
from rec_udf.scorer import Scorer, as_prompt

SCORED_SCHEMA = ("user_id bigint, rank int, item_id bigint, score double, explanation string, "
                 "prompt_tokens int, error string")
SCORED_COLUMNS = ["user_id", "rank", "item_id", "score", "explanation", "prompt_tokens", "error"]


@dataclass(frozen=True)
class BundleRef:
    """How a worker finds the bundle: an archive shipped with SparkContext.addArchive (by its
    file name, unpacked next to the worker), or a directory every executor can read."""
    sha256: str
    archive: Optional[str] = None
    path: Optional[str] = None

    def directory(self) -> Path:
        if self.archive:
            from pyspark import SparkFiles
            return Path(SparkFiles.get(self.archive))
        return Path(self.path)


@dataclass(frozen=True)
class ScoringSpec:
    bundle: BundleRef
    top_k: int = 10
    explain_k: int = 1
    max_new_tokens: int = 16
    batch_size: int = 32
    device: str = "auto"                  # auto | cuda | cpu
    allow_cpu_fallback: bool = False
    blocked: Optional[np.ndarray] = None  # catalogue-order bool mask of items nobody may get (None: none)
    loads: object = None                  # Spark accumulator of {"pid:provider": loads}


_SCORERS: dict[tuple, Scorer] = {}


def scorer_for(spec: ScoringSpec) -> Scorer:
    """This process's Scorer for the bundle, loading (and counting) it only the first time."""
    key = (spec.bundle.sha256, spec.device, spec.allow_cpu_fallback)
    if key not in _SCORERS:
        scorer = Scorer.open(spec.bundle.directory(), prefer=spec.device, allow_cpu_fallback=spec.allow_cpu_fallback)
        if scorer.bundle.sha256 != spec.bundle.sha256:
            raise BundleError(f"{scorer.bundle.directory}: manifest sha256 {scorer.bundle.sha256[:12]} is not the "
                              f"bundle the driver shipped ({spec.bundle.sha256[:12]})")
        _SCORERS[key] = scorer
        if spec.loads is not None:
            spec.loads.add({f"{os.getpid()}:{scorer.provider}": 1})
    return _SCORERS[key]


def _ids(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def score_frames(frames: Iterator[pd.DataFrame], spec: ScoringSpec) -> Iterator[pd.DataFrame]:
    scorer = None
    for frame in frames:
        if frame.empty:
            continue
        scorer = scorer or scorer_for(spec)
        for start in range(0, len(frame), spec.batch_size):
            yield _score_batch(scorer, frame.iloc[start:start + spec.batch_size], spec)


def _score_batch(scorer: Scorer, frame: pd.DataFrame, spec: ScoringSpec) -> pd.DataFrame:
    rows: list[tuple] = []
    users, prompts, examples, sequences, seen = [], [], [], [], []
    for user, text, spans, sequence, history in zip(frame["user_id"], frame["prompt"], frame["entity_spans"],
                                                    frame["sequence_item_ids"], frame["seen_item_ids"]):
        reason, prompt, example = _prepare(scorer, text, spans, sequence)
        if reason:
            rows.append((int(user), None, None, None, None, None if example is None else example.part_a, reason))
            continue
        users.append(int(user))
        prompts.append(prompt)
        examples.append(example)
        sequences.append(_ids(sequence))
        seen.append(_ids(history))
    if users:
        vectors, slots = scorer.encode(examples, sequences)
        top, scores = scorer.top_k(vectors, spec.top_k, exclude=seen, blocked=spec.blocked)
        explanations = _explanations(scorer, spec, prompts, sequences, slots, top, scores)
        item_ids = scorer.bundle.item_ids
        for row, user in enumerate(users):
            for rank in range(top.shape[1]):
                score = float(scores[row, rank])
                if not np.isfinite(score):      # fewer than top_k items left for this user
                    break
                rows.append((user, rank + 1, int(item_ids[top[row, rank]]), score,
                             explanations.get((row, rank)), examples[row].part_a, None))
    return pd.DataFrame(rows, columns=SCORED_COLUMNS)


def _prepare(scorer: Scorer, text, spans, sequence):
    """(reason, prompt, example): reason is None when the row can be scored."""
    if text is None or not isinstance(text, str) or not text.strip():
        return "missing_prompt", None, None
    if sequence is None:
        return "missing_sequence_item_ids (prompts written by an older textualize: re-run it)", None, None
    try:
        prompt = as_prompt(text, spans if spans is not None else ())
        for entity in prompt.entities:
            if not 0 <= entity.start < entity.end <= len(text):
                return f"bad_entity_span: item {entity.item_id} [{entity.start}, {entity.end})", None, None
        example = scorer.example(prompt)
    except Exception as exc:        # a malformed row must not stop the batch; its reason is kept
        return f"bad_prompt: {type(exc).__name__}: {exc}", None, None
    if example.part_a > scorer.max_positions:
        return (f"prompt_too_long: {example.part_a} tokens, the model reads at most {scorer.max_positions} "
                "(lower textualize.max_prompt_tokens)"), None, example
    return None, prompt, example


def _explanations(scorer: Scorer, spec: ScoringSpec, prompts, sequences, slots, top, scores) -> dict:
    """{(row, rank): text} for the first explain_k ranks of every user, generated in one batch."""
    k = min(spec.explain_k, top.shape[1])
    wanted = [(row, rank) for row in range(len(prompts)) for rank in range(k) if np.isfinite(scores[row, rank])]
    out = {}
    for start in range(0, len(wanted), spec.batch_size):
        chunk = wanted[start:start + spec.batch_size]
        rows = [row for row, _ in chunk]
        texts = scorer.explain([prompts[r] for r in rows], [sequences[r] for r in rows],
                               [int(top[r, rank]) for r, rank in chunk], spec.max_new_tokens,
                               slots=slots[rows])
        out.update(zip(chunk, texts))
    return out
