"""Answer matching for the LLaRA/RSLLM 20-candidate protocol (pure Python, no torch).

A model is shown 20 candidate titles and generates free text that should name one. The text comes
back from a tokenizer round trip: WordPiece decoding puts spaces around punctuation
(`mr. holland ' s opus`), lowercases, and strips accents. So comparing normalised words
(`rec_udf.task_prompts.normalise_answer`) fails for titles with apostrophes, dots or hyphens even
when the generation is perfect. Here a title and its round trip share one key: `match_key`
lowercases, strips accents and splits the text into words (runs of letters and digits) and single
punctuation marks, so the spaces a decoder adds or drops around punctuation do not matter, while
word boundaries do ("heat" is not found in "theater"). `match_answer` applies LLaRA's validity rule
to those keys, and `generation_budget` says how many new tokens the longest title needs.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any, Iterable, Sequence

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")


def match_key(text: str) -> tuple[str, ...]:
    """`text` lowercased, accents stripped (NFKD, combining marks dropped), as words and single
    punctuation marks: `Mr. Holland's Opus` and the decoded `mr. holland ' s opus` both give
    ('mr', '.', 'holland', "'", 's', 'opus')."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return tuple(_TOKEN.findall("".join(ch for ch in decomposed if not unicodedata.combining(ch))))


def _occurrences(key: tuple[str, ...], said: tuple[str, ...]) -> list[tuple[int, int]]:
    """Every (start, end) token range where `key` occurs in `said`."""
    n = len(key)
    return [(i, i + n) for i in range(len(said) - n + 1) if said[i:i + n] == key]


def match_answer(text: str, candidate_titles: Sequence[str]) -> int | None:
    """The position of the one candidate named by the answer `text`, or None when the answer names
    none or several (LLaRA's validity rule).

    A candidate is named when its `match_key` occurs as a contiguous run of the answer's key (whole
    words); an empty key never matches. Keys can contain one another ("Heat" in "Heat and Dust"), so a named
    candidate is dropped when EVERY occurrence of its key lies inside an occurrence of a longer
    named candidate's key: the answer "Heat and Dust" names only "Heat and Dust", while "Heat, or
    Heat and Dust" names both (the second "heat" stands alone) and is therefore invalid. Candidates
    with equal keys (duplicate titles) never drop each other, so an answer naming one of them is
    ambiguous: None.
    """
    said = match_key(text)
    keys = [match_key(t) for t in candidate_titles]
    named = {i: spans for i, k in enumerate(keys) if k and (spans := _occurrences(k, said))}
    kept = [i for i, spans in named.items()
            if not all(any(len(keys[j]) > len(keys[i]) and s <= a and b <= e
                           for j in named for s, e in named[j])
                       for a, b in spans)]
    return kept[0] if len(kept) == 1 else None


def generation_budget(tokenizer: Any, titles: Iterable[str], margin: int = 2) -> int:
    """Number of new tokens enough to generate the longest of `titles` in full, plus `margin`
    (room for an end token or a stray leading token); a direct-task `max_new_tokens` of at least
    this cuts no candidate off. `tokenizer` is a `tokenizers.Tokenizer`; pass the titles as the
    answers are rendered (`rec_udf.task_prompts.answer_text`)."""
    longest = max((len(tokenizer.encode(t, add_special_tokens=False).ids) for t in titles), default=0)
    return longest + margin
