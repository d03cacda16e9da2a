"""The explanation task's training side: the data-built target an explanation example is trained
on, and the unigram F1 a generated explanation is scored by. The task families and their templates
are `rec_udf.task_prompts` (shared with the scoring runtime).

Explanation targets are built from the data, not written by people: the genres the item shares
with the user's most frequent genres, and up to two of the user's most recent items that share a
genre with it, e.g. 'They often watch Comedy and Drama, like "Clerks" and "Fargo".' When nothing is
shared: 'It is popular with viewers whose history resembles theirs.'
"""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from rec_udf.task_prompts import item_label, normalise_answer


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
