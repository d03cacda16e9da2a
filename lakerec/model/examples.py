"""Training and evaluation examples for the LM, built with the shared textualizer.

`TextData` holds what prompts need (profiles, item attributes, each user's chronological sequence
with ratings) in the catalogue order of `SplitData`. `ExampleBuilder` renders a user's prompt for a
history prefix exactly as the Spark textualize job does (same function, same settings), tokenizes
it (text-only or unified), and turns it into GLM examples for each task family.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from pyspark.sql import DataFrame, functions as F

from lakerec.eval.protocol import SplitData
from lakerec.eval.split import TEST
from lakerec.model.glm import LEVELS, choose_masked_entities, mask_token_ranges
from lakerec.model.tasks import explanation_target
from lakerec.sources.schema import tie_order_column
from rec_udf.glm_input import GLMExample, SpecialTokens, build_example, tokenize_item, tokenize_prompt
from rec_udf.task_prompts import answer_text, task_sentence
from rec_udf import textualizer
from rec_udf.textualizer import Prompt, entity_text, textualize
from rec_udf.textualize_udf import USER_FIELDS


@dataclass
class TextData:
    split: SplitData
    users: dict[int, dict]                  # user id -> profile fields
    items: list[dict]                       # catalogue index -> item fields
    sequences: dict[int, np.ndarray]        # user id -> item indices, oldest first (train, valid, test)
    ratings: dict[int, np.ndarray]          # user id -> ratings aligned with sequences (nan if none)
    times: dict[int, list]                  # user id -> event times aligned with sequences

    def history(self, user: int, n: int) -> list[dict]:
        """The user's first n interactions as textualizer history entries."""
        seq, ratings, times = self.sequences[user], self.ratings[user], self.times[user]
        return [{**self.items[int(seq[k])], "rating": None if np.isnan(ratings[k]) else float(ratings[k]),
                 "event_time": times[k]} for k in range(n)]

    def prefix_length(self, user: int, on: str) -> int:
        """How much history a prediction of the `on` item may see (see eval.protocol.seen_before)."""
        n_train = len(self.split.train.get(user, ()))
        return n_train + (1 if on == TEST and user in self.split.valid else 0)

    def target(self, user: int, on: str) -> int:
        return (self.split.test if on == TEST else self.split.valid)[user]


def catalogue_items(items: DataFrame, item_ids: Sequence[int]) -> list[dict]:
    """Item fields in catalogue order (an id missing from the table gets empty fields)."""
    by_id = {int(r.item_id): r.asDict() for r in items.select("item_id", "title", "release_year", "genres").collect()}
    return [by_id.get(int(item), {"item_id": int(item), "title": None, "release_year": None, "genres": None})
            for item in item_ids]


def item_examples(tokenizer, special: SpecialTokens, items: Sequence[dict], unified: bool) -> list[GLMExample]:
    """One short example per catalogue item: its text (no rating) and, unified, its ID slot."""
    return [build_example(tokenize_item(tokenizer, special, entity_text({k: v for k, v in item.items()
                                                                        if k != "rating"}), i, unified), special)
            for i, item in enumerate(items)]


def collect_text_data(split: SplitData, split_df: DataFrame, users: DataFrame, items: DataFrame) -> TextData:
    index = {int(item): i for i, item in enumerate(split.item_ids)}
    item_rows = catalogue_items(items, split.item_ids)
    profiles = {int(r.user_id): r.asDict() for r in users.select(*USER_FIELDS).collect()}
    rows = (split_df.groupBy("user_id")
            .agg(F.sort_array(F.collect_list(F.struct("event_time", tie_order_column().alias("tie"), "item_id",
                                                      "rating"))).alias("events"))
            .collect())
    sequences, ratings, times = {}, {}, {}
    for row in rows:
        events = row.events
        sequences[row.user_id] = np.array([index[e.item_id] for e in events], dtype=np.int64)
        ratings[row.user_id] = np.array([np.nan if e.rating is None else e.rating for e in events], dtype=np.float64)
        times[row.user_id] = [e.event_time for e in events]
        profiles.setdefault(row.user_id, {"user_id": row.user_id})
    return TextData(split, profiles, item_rows, sequences, ratings, times)


class ExampleBuilder:
    def __init__(self, data: TextData, tokenizer, special: SpecialTokens, *, max_tokens: int, max_items: int,
                 spec: Mapping[str, str]):
        self.data, self.tokenizer, self.special = data, tokenizer, special
        self.max_tokens, self.max_items, self.spec = max_tokens, max_items, dict(spec)
        self.noun = textualizer.item_noun(self.spec)
        self.item_index = {int(item): i for i, item in enumerate(data.split.item_ids)}

    @functools.lru_cache(maxsize=20_000)
    def prompt(self, user: int, n: int) -> Prompt:
        return textualize(self.data.users[user], self.data.history(user, n), max_tokens=self.max_tokens,
                          max_items=self.max_items, spec=self.spec)

    @functools.lru_cache(maxsize=40_000)
    def tokenized(self, user: int, n: int, unified: bool):
        return tokenize_prompt(self.tokenizer, self.special, self.prompt(user, n), self.item_index, unified)

    def ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    @functools.lru_cache(maxsize=8)
    def item_examples(self, unified: bool) -> list[GLMExample]:
        return item_examples(self.tokenizer, self.special, self.data.items, unified)

    def example(self, user: int, n: int, family: str, template: str, *, unified: bool, target: int | None,
                candidates: Sequence[int] = (), rng: np.random.Generator | None = None, mask_prob: float = 0.0,
                with_answer: bool = True) -> GLMExample:
        """A GLM example: the user's prompt over the first n interactions, the task sentence, the
        blank, and (with_answer) the answer as the blank's span. With probability mask_prob, history
        entities are also blanked (entity, sentence or document level) and infilled in order."""
        tokenized = self.tokenized(user, n, unified)
        masked = []
        if rng is not None and mask_prob and tokenized.n_entities and rng.random() < mask_prob:
            level = LEVELS[int(rng.integers(len(LEVELS)))]
            masked = mask_token_ranges(tokenized, choose_masked_entities(tokenized.n_entities, level, rng))
        item = self.data.items[target] if target is not None else None
        sentence = task_sentence(template, noun=self.noun, item=item,
                                 candidates=[self.data.items[c] for c in candidates])
        answer = None
        if with_answer and target is not None:
            answer = self.ids(self.answer(user, n, family, target))
        return build_example(tokenized, self.special, masked=masked, suffix_ids=self.ids(sentence) if sentence else (),
                             target_ids=answer)

    def answer(self, user: int, n: int, family: str, target: int) -> str:
        item = self.data.items[target]
        if family in ("sequential", "direct"):
            return answer_text(item)
        if family == "rating":
            position = int(np.nonzero(self.data.sequences[user] == target)[0][-1])
            return str(int(round(self.data.ratings[user][position])))
        if family == "explanation":
            return explanation_target(item, self.data.history(user, n))
        raise ValueError(f"unknown task family {family!r}")

    def rated(self, user: int, target: int) -> bool:
        positions = np.nonzero(self.data.sequences[user] == target)[0]
        return len(positions) > 0 and not np.isnan(self.data.ratings[user][positions[-1]])

