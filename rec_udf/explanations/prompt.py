"""The explainer's instruction: the grounded chat prompt built from the evidence, the answer's
opening it continues, and the first sentence of what it writes."""
from __future__ import annotations

from typing import Sequence

from rec_udf.explanations.evidence import Evidence
from rec_udf.explanations.titles import article, display_title
from rec_udf.textualizer import clean_text

# 5: an evidence line lists only the genres its item shares with the recommended one
EXPLAINER_PROMPT_VERSION = "5"
SYSTEM_PROMPT = "You explain movie recommendations in one short sentence, using only the facts given."


def _described(title: str, genres: Sequence[str], year: int | None = None) -> str:
    details = ([str(year)] if year else []) + ([", ".join(genres)] if genres else [])
    return f'"{display_title(title)}"' + (f" ({'; '.join(details)})" if details else "")


def explanation_messages(evidence: "Evidence", noun: str = "movie", history_genres: str = "shared") -> list[dict[str, str]]:
    """The grounded instruction for one (user, item): chat messages for the explainer's template.
    A history item is listed with the genres it shares with the recommended item only: the 135M
    model describes the recommended item by the cited one's genres ('like "Fargo", it's a crime
    drama' of "Contact"), so it is shown only those true of both (first-attempt pass rate 19.7% ->
    29.0% on 300 demo users, 2026-12-06, `bench/explanation_variants.py`). history_genres "all": prompt version 4's lines
    (`bench/explanation_variants.py` compares them)."""
    if history_genres not in ("shared", "all"):
        raise ValueError(f"history_genres is shared or all, not {history_genres!r}")
    lines = [f"The user liked these {noun}s:"]
    for e in evidence.items:
        rated = f", they rated it {e.rating:g}/5" if e.rating is not None else ""
        lines.append(f"- {_described(e.title, e.shared_genres if history_genres == 'shared' else e.genres)}{rated}")
    lines.append(f"We recommend {_described(evidence.title, evidence.genres, evidence.release_year)}.")
    lines.append(f'Why will they like "{display_title(evidence.title)}"?')
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def answer_prefix(evidence: "Evidence", cited: int = 0) -> str:
    """The answer's opening, written from the evidence (the item's first two genres, its `cited`-th
    history item); the explainer continues it with the reason. Stating the genres here, true by
    construction, measured better than leaving them to the 135M model, which borrows the history
    items' genres (bench/results/explain.md)."""
    title = f'"{display_title(evidence.title)}"'
    if evidence.genres:
        kinds = " and ".join(g.lower() for g in evidence.genres[:2])
        title += f", {article(kinds)} {kinds} film,"
    if not evidence.items:
        return f"You will enjoy {title} because it"
    return f'You will enjoy {title} because, like "{display_title(evidence.items[cited].title)}", it'


def first_sentence(text: str) -> str | None:
    """The first sentence of a generated answer (the explainer is asked for one; small models run
    on), or None when it never ends. A full stop inside a quoted title ("I.Q.") does not end it."""
    text = clean_text(text.split("\n")[0])
    quotes = 0
    for at, ch in enumerate(text):
        if ch in '"“”':
            quotes += 1
        elif ch in ".!?" and quotes % 2 == 0 and (at + 1 == len(text) or text[at + 1] == " "):
            return text[:at + 1]
    return None

