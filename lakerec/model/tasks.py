"""Multitask prompt families (RecSysLLM's multitask prompts) over the shared textualizer's prompt.

Every example is the textualized user prompt (byte-identical to the `prompts` table for the same
history) followed by a task sentence and the answer blank:
  sequential   -- the next item; the first template has no task sentence: it is the scoring prompt
  direct       -- choose one item from a candidate list
  rating       -- the user's rating of a named item (a digit 1-5)
  explanation  -- why the user would like a named item
The last template of each family is HELD OUT: never trained on, evaluated zero-shot.

Explanation targets are built from the data, not written by people: the genres the item shares
with the user's most frequent genres, and up to two of the user's most recent items that share a
genre with it, e.g. 'They often watch Comedy and Drama, like "Clerks" and "Fargo".' When nothing is
shared: 'It is popular with viewers whose history resembles theirs.'
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from rec_udf.task_prompts import (EXPLANATION_TEMPLATE, FAMILIES, SCORING_TEMPLATE, TEMPLATES,
                                answer_text, heldout_template, item_label, normalise_answer, task_sentence,
                                trained_templates)


def explanation_target(item: Mapping, history: Sequence[Mapping]) -> str:
    """The data-built explanation (see the module docstring). `history` oldest first."""
    genres = [g for g in (item.get("genres") or ()) if g and g.lower() != "unknown"]
    counts = Counter(g for h in history for g in (h.get("genres") or ()) if g in genres)
    shared = [g for g, _ in counts.most_common(2)]
    similar = [h for h in reversed(history) if set(h.get("genres") or ()) & set(shared)][:2]
    if not shared:
        return "It is popular with viewers whose history resembles theirs."
    text = f"They often watch {' and '.join(shared)}"
    if similar:
        text += ", like " + " and ".join(item_label(h) for h in similar)
    return text + "."


def unigram_f1(predicted: str, reference: str) -> float:
    """Token-overlap F1 between a generated and a reference explanation."""
    p, r = normalise_answer(predicted).split(), normalise_answer(reference).split()
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


__all__ = ["EXPLANATION_TEMPLATE", "FAMILIES", "SCORING_TEMPLATE", "TEMPLATES", "answer_text", "heldout_template",
           "item_label", "normalise_answer", "task_sentence", "trained_templates", "explanation_target",
           "unigram_f1"]
