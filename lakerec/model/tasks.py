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

from rec_udf.textualizer import clean_text

FAMILIES = ("sequential", "direct", "rating", "explanation")

TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "sequential": [
        ("seq-0", ""),
        ("seq-1", " Next, they will watch:"),
        ("seq-heldout", " The {noun} this user watches after these is:"),
    ],
    "direct": [
        ("direct-0", " Candidates: {candidates}. The user will choose:"),
        ("direct-1", " Pick the one they watch next from {candidates}. Answer:"),
        ("direct-heldout", " Among {candidates}, the {noun} this user would watch next is:"),
    ],
    "rating": [
        ("rating-0", " How would the user rate {item}? Rating:"),
        ("rating-1", " The user's rating of {item}, from 1 to 5, is"),
        ("rating-heldout", " On a scale of 1 to 5, this user would give {item}:"),
    ],
    "explanation": [
        ("explanation-0", " Why would the user enjoy {item}?"),
        ("explanation-1", " Explain why {item} suits this user:"),
        ("explanation-heldout", " Give a reason this user would like {item}:"),
    ],
}
SCORING_TEMPLATE = TEMPLATES["sequential"][0]


def trained_templates(family: str) -> list[tuple[str, str]]:
    return TEMPLATES[family][:-1]


def heldout_template(family: str) -> tuple[str, str]:
    return TEMPLATES[family][-1]


def item_label(item: Mapping) -> str:
    """How a task names an item: its title, quoted (answers are compared on the bare title)."""
    return f'"{answer_text(item)}"'


def answer_text(item: Mapping) -> str:
    return clean_text(item.get("title")) or f"item {item['item_id']}"


def normalise_answer(text: str) -> str:
    return " ".join("".join(ch for ch in text.lower() if ch.isalnum() or ch.isspace()).split())


def task_sentence(template: str, *, noun: str, item: Mapping | None = None,
                  candidates: Sequence[Mapping] = ()) -> str:
    return template.format(noun=noun, item=item_label(item) if item is not None else "",
                           candidates="; ".join(item_label(c) for c in candidates))


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
