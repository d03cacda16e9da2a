"""The scoring step on executors (Spark mapInPandas), torch-free.

Input batches carry prompts-table rows (user_id, prompt, entity_spans, sequence_item_ids,
seen_item_ids); each user comes out as up to top_k rows (rank, item_id, score, explanation for the
first explain_k) or as one row with an `error` (the driver quarantines it with that reason).

The bundle is loaded once per Python worker process: `recommender_for` keeps a process-level cache keyed
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
from rec_udf.glm_input import GLMExample
from rec_udf.prompt_inputs import as_prompt
from rec_udf.recommender import Recommender
from rec_udf.textualizer import Prompt

SCORED_SCHEMA = ("user_id bigint, rank int, item_id bigint, score double, explanation string, "
                 "explanation_source string, evidence_item_ids array<bigint>, explanation_rejected string, "
                 "prompt_tokens int, error string")
SCORED_COLUMNS = ["user_id", "rank", "item_id", "score", "explanation", "explanation_source", "evidence_item_ids",
                  "explanation_rejected", "prompt_tokens", "error"]


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
    """What a scoring task needs, filled by the driver from the `score` settings (no defaults here:
    conf/local.yaml holds them, lakerec/scoring/stage.py:scoring_spec copies them)."""
    bundle: BundleRef
    top_k: int
    explain_k: int
    explainer: str                        # llm | template | off (see rec_udf.explanations)
    max_new_tokens: int
    explain_batch_size: int               # explanations per explainer call
    explain_attempts: int                 # LLM attempts per explanation before the fallback (1..EVIDENCE_ITEMS)
    batch_size: Optional[int]             # users per ONNX Runtime call; None (conf `auto`): the loaded
                                          # bundle's own (Recommender.batch_size)
    device: str                           # auto | cuda | cpu
    allow_cpu_fallback: bool
    blocked: Optional[np.ndarray] = None  # catalogue-order bool mask of items nobody may get (None: none)
    loads: object = None                  # Spark accumulator of {"pid:provider": loads}
    explained: object = None              # Spark accumulator of {"llm_first_attempt" | "llm_later_attempt" |
                                          # "fallback": explanations}


_RECOMMENDERS: dict[tuple, Recommender] = {}


def recommender_for(spec: ScoringSpec) -> Recommender:
    """This process's Recommender for the bundle, loading (and counting) it only the first time."""
    key = (spec.bundle.sha256, spec.device, spec.allow_cpu_fallback, spec.explainer == "llm", spec.max_new_tokens,
           spec.explain_batch_size)
    if key not in _RECOMMENDERS:
        recommender = Recommender.open(spec.bundle.directory(), prefer=spec.device,
                                       allow_cpu_fallback=spec.allow_cpu_fallback, explainer=spec.explainer == "llm",
                                       max_new_tokens=spec.max_new_tokens, explain_batch_size=spec.explain_batch_size)
        if recommender.bundle.sha256 != spec.bundle.sha256:
            raise BundleError(f"{recommender.bundle.directory}: manifest sha256 {recommender.bundle.sha256[:12]} is "
                              f"not the bundle the driver shipped ({spec.bundle.sha256[:12]})")
        _RECOMMENDERS[key] = recommender
        if spec.loads is not None:
            spec.loads.add({f"{os.getpid()}:{recommender.provider}": 1})
    return _RECOMMENDERS[key]


def _ids(values) -> np.ndarray:
    return np.zeros(0, dtype=np.int64) if values is None else np.asarray(values, dtype=np.int64)


@dataclass
class _Ready:
    """A row that passed the checks (tokenized when the bundle reads prompts): what scoring needs of it."""
    user: int
    prompt: Prompt
    example: Optional[GLMExample]  # None: the bundle serves the ID side alone and reads no prompt tokens
    sequence: np.ndarray
    seen: np.ndarray
    ratings: object               # the user's ratings of `sequence` (None: an older prompts table)


def score_frames(frames: Iterator[pd.DataFrame], spec: ScoringSpec) -> Iterator[pd.DataFrame]:
    recommender = None
    for frame in frames:
        if frame.empty:
            continue
        recommender = recommender or recommender_for(spec)
        rejected, ready = _prepare_frame(recommender, frame)
        if rejected:
            yield pd.DataFrame(rejected, columns=SCORED_COLUMNS)
        # batches of similar prompt lengths: a batch is padded to its longest prompt
        ready.sort(key=_tokens)
        size = spec.batch_size or recommender.batch_size
        ranked = [_rank_batch(recommender, ready[start:start + size], spec) for start in range(0, len(ready), size)]
        if not ranked:
            continue
        # explanations for the whole frame at once: the explainer batches across the ranking batches
        batch = [r for part, _, _ in ranked for r in part]
        top, scores = np.concatenate([t for _, t, _ in ranked]), np.concatenate([s for _, _, s in ranked])
        explanations = _explanations(recommender, spec, batch, top, scores)
        yield _ranked_rows(recommender, [r.user for r in batch], [_tokens(r) for r in batch], top, scores,
                           explanations)


def _prepare_frame(recommender: Recommender, frame: pd.DataFrame) -> tuple[list[tuple], list[_Ready]]:
    """(rejected rows with their reason, rows ready to score)."""
    rejected, ready = [], []
    ratings = frame["sequence_ratings"] if "sequence_ratings" in frame else [None] * len(frame)
    for user, text, spans, sequence, history, rated in zip(frame["user_id"], frame["prompt"], frame["entity_spans"],
                                                           frame["sequence_item_ids"], frame["seen_item_ids"], ratings):
        reason, prompt, example = _prepare(recommender, text, spans, sequence)
        if reason:
            row = dict.fromkeys(SCORED_COLUMNS)
            row.update(user_id=int(user), prompt_tokens=None if example is None else example.part_a, error=reason)
            rejected.append(row)
        else:
            ready.append(_Ready(int(user), prompt, example, _ids(sequence), _ids(history), rated))
    return rejected, ready


def _rank_batch(recommender: Recommender, batch: list[_Ready],
                spec: ScoringSpec) -> tuple[list[_Ready], np.ndarray, np.ndarray]:
    """(the rows, their top_k catalogue indices, scores): user vectors -> top-k, history excluded."""
    vectors, _ = recommender.encode([r.example for r in batch], [r.sequence for r in batch])
    top, scores = recommender.top_k(vectors, spec.top_k, exclude=[r.seen for r in batch], blocked=spec.blocked)
    return batch, top, scores


def _ranked_rows(recommender: Recommender, users: list[int], tokens: list[int], top: np.ndarray, scores: np.ndarray,
                 explanations: dict) -> pd.DataFrame:
    """One row per (user, rank) with a finite score (-inf: the user had fewer than top_k items left)."""
    row, rank = np.nonzero(np.isfinite(scores))          # row-major: each user's ranks in order
    fields = {name: np.full(top.shape, None, dtype=object) for name in ("text", "source", "evidence", "rejected")}
    for (r, k), e in explanations.items():
        fields["text"][r, k], fields["source"][r, k] = e.text, e.source
        fields["evidence"][r, k], fields["rejected"][r, k] = e.evidence_item_ids, e.rejected
    return pd.DataFrame({"user_id": np.asarray(users, dtype=np.int64)[row], "rank": rank + 1,
                         "item_id": recommender.bundle.item_ids[top[row, rank]].astype(np.int64),
                         "score": scores[row, rank].astype(np.float64), "explanation": fields["text"][row, rank],
                         "explanation_source": fields["source"][row, rank],
                         "evidence_item_ids": fields["evidence"][row, rank],
                         "explanation_rejected": fields["rejected"][row, rank],
                         "prompt_tokens": np.asarray(tokens, dtype=np.int64)[row],
                         "error": np.full(len(row), None, dtype=object)},
                        columns=SCORED_COLUMNS)


def _tokens(row: _Ready) -> int:
    """The prompt tokens the model read for this row (0 when it reads none)."""
    return 0 if row.example is None else row.example.part_a


def _prepare(recommender: Recommender, text, spans, sequence):
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
        if not recommender.reads_prompts:       # the ID side alone: the prompt is checked, not tokenized
            return None, prompt, None
        example = recommender.example(prompt)
    except Exception as exc:        # a malformed row must not stop the batch; its reason is kept
        return f"bad_prompt: {type(exc).__name__}: {exc}", None, None
    if example.part_a > recommender.max_positions:
        return (f"prompt_too_long: {example.part_a} tokens, the model reads at most {recommender.max_positions} "
                "(lower textualize.max_prompt_tokens)"), None, example
    return None, prompt, example


def _explanations(recommender: Recommender, spec: ScoringSpec, batch: list[_Ready], top, scores) -> dict:
    """{(row, rank): Explanation} for the first explain_k ranks of every user (none when the
    explainer is off): evidence from the ranking model, then the LLM (checked) or the template."""
    if spec.explainer == "off":
        return {}
    k = min(spec.explain_k, top.shape[1])
    wanted = [(row, rank) for row in range(len(batch)) for rank in range(k) if np.isfinite(scores[row, rank])]
    evidence = [recommender.evidence(int(top[row, rank]), batch[row].sequence, batch[row].ratings)
                for row, rank in wanted]
    said = recommender.explanations(evidence, llm=spec.explainer == "llm", attempts=spec.explain_attempts)
    if spec.explained is not None:
        counts: dict[str, int] = {}
        for e in said:
            key = "fallback" if e.source != "llm" else ("llm_first_attempt" if e.attempts == 1 else "llm_later_attempt")
            counts[key] = counts.get(key, 0) + 1
        spec.explained.add(counts)
    return dict(zip(wanted, said))
