"""Prompts-table rows as the graphs' text inputs: a row's text and entity spans as a `Prompt`, its
GLM example (token ids, slots, 2D positions, built by the training code's own `rec_udf.glm_input`,
so a prompt scores as it was evaluated), and examples right-padded into one batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rec_udf.glm_input import MAX_INTER, MAX_INTRA, GLMExample, SpecialTokens, build_example, tokenize_prompt
from rec_udf.textualizer import EntitySpan, Prompt


@dataclass
class PromptBatch:
    """Part A of a batch of GLM examples, right-padded: the user encoder's and generator's inputs."""
    input_ids: np.ndarray
    slot: np.ndarray
    item: np.ndarray
    positions: np.ndarray
    inter: np.ndarray
    intra: np.ndarray
    attention_mask: np.ndarray
    blank: np.ndarray

    def feeds(self, *names: str) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in names}

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def as_prompt(text: str, spans: Sequence) -> Prompt:
    """A prompts-table row (text, entity_spans as dicts or (item_id, start, end)) as a Prompt."""
    entities = tuple(EntitySpan(int(s["item_id"]), int(s["start"]), int(s["end"])) if isinstance(s, dict)
                     else EntitySpan(*map(int, s)) for s in spans)
    return Prompt(text, entities, tuple(e.item_id for e in entities), len(entities), 0)


@dataclass(frozen=True)
class PromptInputs:
    """One bundle's way from prompts to padded batches: its tokenizer, special tokens and items."""
    tokenizer: object
    special: SpecialTokens
    item_index: Mapping[int, int]       # item id -> catalogue index (the prompt's item slots)
    unified: bool                       # the manifest's prompt_form is `unified` (item ids in ID slots)

    def example(self, prompt: Prompt, suffix: str = "") -> GLMExample:
        tokenized = tokenize_prompt(self.tokenizer, self.special, prompt, self.item_index, self.unified)
        ids = self.tokenizer.encode(suffix, add_special_tokens=False).ids if suffix else ()
        return build_example(tokenized, self.special, suffix_ids=ids)

    def prompt_batch(self, prompts: Sequence[Prompt], suffixes: Sequence[str] | None = None) -> PromptBatch:
        return self.batch([self.example(p, suffixes[k] if suffixes else "") for k, p in enumerate(prompts)])

    def batch(self, examples: Sequence[GLMExample]) -> PromptBatch:
        length = max(e.part_a for e in examples)
        n = len(examples)
        grids = {name: np.zeros((n, length), dtype=np.int64) for name in ("slot", "item", "positions", "inter",
                                                                         "intra", "attention_mask")}
        input_ids = np.full((n, length), self.special.pad, dtype=np.int64)
        for row, e in enumerate(examples):
            a = e.part_a
            input_ids[row, :a] = e.ids[:a]
            for name, values in (("slot", e.slot), ("item", e.item), ("positions", e.pos), ("inter", e.inter),
                                 ("intra", e.intra)):
                grids[name][row, :a] = values[:a]
            grids["attention_mask"][row, :a] = 1
        np.minimum(grids["inter"], MAX_INTER - 1, out=grids["inter"])
        np.minimum(grids["intra"], MAX_INTRA - 1, out=grids["intra"])
        return PromptBatch(input_ids, blank=np.array([e.blank for e in examples], dtype=np.int64), **grids)
