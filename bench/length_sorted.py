"""The scoring job's batching outside Spark, for benchmarks of the bare encoder: prompts tokenized,
ordered by length (as `rec_udf.scoring_udf.score_frames` orders each Arrow batch), encoded and ranked
in batches of a given size."""
from __future__ import annotations

import numpy as np
import pandas as pd

from rec_udf.prompt_inputs import as_prompt
from rec_udf.recommender import Recommender


def prepare(recommender: Recommender, frame: pd.DataFrame) -> tuple[list, list, list, np.ndarray]:
    """(examples, ID sequences, seen items, length order) of a prompts-table frame."""
    examples = [recommender.example(as_prompt(t, s)) for t, s in zip(frame["prompt"], frame["entity_spans"])]
    sequences = [np.asarray(s, dtype=np.int64) for s in frame["sequence_item_ids"]]
    seen = [np.asarray(s, dtype=np.int64) for s in frame["seen_item_ids"]]
    return examples, sequences, seen, np.argsort([e.part_a for e in examples], kind="stable")


def encode_top_k(recommender: Recommender, prepared, batch_size: int, k: int = 10) -> np.ndarray:
    """(users, k) catalogue indices, rows in the frame's order; batches cut from the length order."""
    examples, sequences, seen, order = prepared
    tops = np.zeros((len(examples), k), dtype=np.int64)
    for b in range(0, len(order), batch_size):
        rows = order[b:b + batch_size]
        vectors, _ = recommender.encode([examples[r] for r in rows], [sequences[r] for r in rows])
        tops[rows], _ = recommender.top_k(vectors, k, exclude=[seen[r] for r in rows])
    return tops
