"""The textualizer applied to Arrow batches (Spark mapInPandas): one prompt per user row."""
from __future__ import annotations

from typing import Iterator, Mapping

import pandas as pd

from rec_udf.textualizer import textualize

PROMPT_SCHEMA = (
    "user_id bigint, prompt string, "
    "entity_spans array<struct<item_id:bigint,start:int,end:int>>, "
    "history_item_ids array<bigint>, sequence_item_ids array<bigint>, sequence_ratings array<double>, "
    "seen_item_ids array<bigint>, "
    "n_history_total int, "
    "n_history_kept int, prompt_tokens int, template_name string, "
    "prompt_template_version string, template_hash string"
)
USER_FIELDS = ("user_id", "age", "gender", "occupation", "zip_code")


def _rating(value) -> float | None:
    return None if value is None or value != value else float(value)


def textualize_frames(frames: Iterator[pd.DataFrame], *, max_tokens: int, max_items: int,
                      spec: Mapping[str, str]) -> Iterator[pd.DataFrame]:
    """Input columns: USER_FIELDS, `history` (array of item structs, possibly already cut to the
    newest max_items), `seen_item_ids` and `n_history` (the user's whole history)."""
    for frame in frames:
        rows = []
        columns = [frame[c] for c in USER_FIELDS] + [frame["history"], frame["seen_item_ids"],
                                                    frame["n_history"]]
        for *user_values, history, seen, n_history in zip(*columns):
            user = dict(zip(USER_FIELDS, user_values))
            prompt = textualize(user, history if history is not None else (),
                                max_tokens=max_tokens, max_items=max_items, spec=spec)
            rows.append((
                int(user["user_id"]), prompt.text,
                [{"item_id": e.item_id, "start": e.start, "end": e.end} for e in prompt.entities],
                list(prompt.history_item_ids),
                [int(h["item_id"]) for h in history] if history is not None else [],
                [_rating(h.get("rating")) for h in history] if history is not None else [],
                [int(i) for i in seen] if seen is not None else [],
                int(n_history), len(prompt.history_item_ids), prompt.n_tokens,
                prompt.template_name, prompt.template_version, prompt.template_hash))
        yield pd.DataFrame(rows, columns=[
            "user_id", "prompt", "entity_spans", "history_item_ids", "sequence_item_ids", "sequence_ratings",
            "seen_item_ids",
            "n_history_total", "n_history_kept", "prompt_tokens", "template_name",
            "prompt_template_version", "template_hash"])
