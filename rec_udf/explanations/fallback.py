"""The plain data-built sentence that replaces a generated one that fails the check (true by
construction), and the two values of `explanation_source`."""
from __future__ import annotations

from rec_udf.explanations.evidence import GOOD_RATING, Evidence
from rec_udf.explanations.titles import article, display_title

SOURCE_LLM, SOURCE_FALLBACK = "llm", "fallback"


def fallback_sentence(evidence: Evidence) -> str:
    """A plain sentence built from the evidence alone (true by construction)."""
    title = f'"{display_title(evidence.title)}"'
    if not evidence.items:
        genres = f" ({', '.join(evidence.genres)})" if evidence.genres else ""
        return f"Recommended: {title}{genres}, ranked for you by the model from viewers with similar histories."
    cited = evidence.items[:2]
    quoted = " and ".join(f'"{display_title(e.title)}"' + (f" ({e.rating:g}/5)" if e.rating is not None else "")
                          for e in cited)
    # "liked" only when every cited item was rated GOOD_RATING or more; otherwise what is known: watched
    verb = "liked" if all(e.rating is not None and e.rating >= GOOD_RATING for e in cited) else "watched"
    # "another <genre> film" only when every cited item has that genre; else the genre and the item it is
    # shared with ('a drama film like "Contact"', not "another action film" when only the second is one)
    common = [g for g in evidence.genres if all(g in e.shared_genres for e in cited)]
    sharer = next((e for e in cited if e.shared_genres), None)
    if common:
        why = f"another {common[0].lower()} film"
    elif sharer:
        genre = next(g for g in evidence.genres if g in sharer.shared_genres).lower()
        why = f'{article(genre)} {genre} film like "{display_title(sharer.title)}"'
    else:
        why = "which the model places close to them"
    return f"Because you {verb} {quoted}, we recommend {title}, {why}."
