"""The task sentences shared by training and the scoring runtime (RecSysLLM's multitask prompts).

Every example is the textualized user prompt followed by a task sentence and the answer blank. The
last template of each family is HELD OUT: never trained on, evaluated zero-shot. Scoring uses
`SCORING_TEMPLATE` (no sentence: the blank right after the prompt) and explanations
`EXPLANATION_TEMPLATE`; a bundle records both by name and text, and the runtime refuses a bundle
whose texts differ from these.
"""
from __future__ import annotations

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
EXPLANATION_TEMPLATE = TEMPLATES["explanation"][0]


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
