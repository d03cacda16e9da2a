"""Grounded explanations, torch-free: the evidence behind a recommendation, the instruction prompt
built from it, the faithfulness check every generated sentence must pass, and the plain data-built
sentence that replaces one that fails.

Evidence (`select_evidence`): among the user's history, the items closest to the recommended item in
the ranking model's own item space (cosine of SASRec's item embeddings), preferring those the user
rated 4/5 or more when ratings are known; with the genres each shares with the recommended item and
the user's rating. The explainer LLM only sees this evidence, and the check (`check`) accepts a
sentence only when every title it names is the recommended item's or one of the user's history
titles, every genre it names is the item's or the evidence's, every "N/5" rating it states is one
the user gave, and it is short, mentions the recommended item and does not loop. A sentence that
fails is replaced by `fallback_sentence` and marked `fallback`, never silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from rec_udf.textualizer import clean_text

EVIDENCE_ITEMS = 3          # history items quoted as evidence per explanation
GOOD_RATING = 4.0           # evidence prefers items rated at least this (when ratings are known)
DISLIKED_BELOW = 3.0        # items the user rated below this are never evidence
MAX_WORDS = 60              # a longer "sentence" is not an explanation
SOURCE_LLM, SOURCE_FALLBACK = "llm", "fallback"

# Words that name a genre without quoting it ("a thrilling crime story"): stems per genre name.
_GENRE_STEMS = {
    # "adventure" alone is an everyday word ("a young man's adventures"): only its genre phrasings count
    "action": ("action",), "adventure": ("adventure film", "adventure movie", "adventure story", "adventure genre",
                                         "action adventure", "adventure comedy", "adventure drama"), "animation": ("animat", "cartoon"),
    "children's": ("children", "kids", "family film", "family movie"), "comedy": ("comed", "comic", "funny"),
    "crime": ("crime", "criminal", "gangster"), "documentary": ("documentar",), "drama": ("drama",),
    "fantasy": ("fantasy", "fantasies"), "film-noir": ("noir",), "horror": ("horror", "scary"), "musical": ("musical",),
    "mystery": ("myster",), "romance": ("romanc", "romantic", "love story"), "sci-fi": ("sci-fi", "sci fi",
    "science fiction", "science-fiction"), "thriller": ("thrill",), "war": ("war film", "war movie", "war drama",
    "war story", "war epic"), "western": ("western",),
}
_QUOTED = re.compile(r'"([^"]{1,200})"|“([^”]{1,200})”')
_RATING = re.compile(r"(?<![\d.])([0-5](?:\.[05])?)\s*(?:/\s*5|out of 5|stars?)(?![\d])")
_WORD = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    """Lower case, letters and digits only, single spaces ("Mr. Holland's Opus" -> "mr holland s opus")."""
    return " ".join(_WORD.findall(clean_text(text).lower()))


def display_title(title: str) -> str:
    """MovieLens-style "Godfather, The" as a person writes it: "The Godfather"."""
    title = clean_text(title)
    match = re.match(r"^(.*), (The|A|An|Les|La|Le|Il|El|Die|Das|Der)( \(.*\))?$", title)
    if match:
        return f"{match.group(2)} {match.group(1)}{match.group(3) or ''}"
    return title


def title_forms(title: str) -> set[str]:
    """Normalised spellings a sentence may use for a title: as stored, as written, without brackets."""
    forms = {normalise(title), normalise(display_title(title))}
    forms |= {normalise(re.sub(r"\s*\(.*?\)", "", f)) for f in (title, display_title(title))}
    return {f for f in forms if f}


def genre_names(genres) -> list[str]:
    return [clean_text(g) for g in (genres if genres is not None else ()) if clean_text(g)
            and clean_text(g).lower() != "unknown"]


@dataclass(frozen=True)
class EvidenceItem:
    item_id: int
    title: str
    genres: tuple[str, ...]
    shared_genres: tuple[str, ...]
    rating: float | None


@dataclass(frozen=True)
class Evidence:
    """What an explanation of (user, item) may say: the item, the closest history items, the history."""
    item_id: int
    title: str
    genres: tuple[str, ...]
    release_year: int | None
    items: tuple[EvidenceItem, ...]
    history_titles: tuple[str, ...] = field(default=(), repr=False)

    @property
    def item_ids(self) -> list[int]:
        return [e.item_id for e in self.items]


def select_evidence(item_vectors: np.ndarray, target: int, history: Sequence[int],
                    ratings: Sequence[float | None] | None = None, k: int = EVIDENCE_ITEMS) -> list[int]:
    """Positions in `history` (catalogue indices) of the k items closest to catalogue index `target`
    by cosine in `item_vectors`, best first; items rated >= GOOD_RATING first when ratings are known,
    items rated below DISLIKED_BELOW never (a film the user disliked explains nothing)."""
    history = np.asarray(history, dtype=np.int64)
    if ratings is not None and len(ratings) != len(history):
        raise ValueError(f"{len(ratings)} ratings for {len(history)} history items")
    if not len(history):
        return []
    vectors = item_vectors[history]
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(item_vectors[target])), 1e-12)
    similarity = vectors @ item_vectors[target] / np.maximum(norms, 1e-12)
    liked = np.zeros(len(history), dtype=bool)
    if ratings is not None:
        liked = np.array([r is not None and not np.isnan(r) and r >= GOOD_RATING for r in ratings], dtype=bool)
    disliked = np.zeros(len(history), dtype=bool)
    if ratings is not None:
        disliked = np.array([r is not None and not np.isnan(r) and r < DISLIKED_BELOW for r in ratings], dtype=bool)
    # distinct items only (a history may repeat one); liked first, then by similarity
    order = np.lexsort((-similarity, ~liked))
    chosen, seen = [], set(history[disliked].tolist())
    for position in order:
        if int(history[position]) not in seen:
            seen.add(int(history[position]))
            chosen.append(int(position))
        if len(chosen) == k:
            break
    return chosen


def build_evidence(item: Mapping, history_items: Sequence[Mapping], ratings: Sequence[float | None],
                   all_history: Sequence[Mapping] = ()) -> Evidence:
    """`item` and `history_items` are catalogue rows (item_id, title, release_year, genres)."""
    genres = tuple(genre_names(item.get("genres")))
    evidence = []
    for row, rating in zip(history_items, ratings):
        own = tuple(genre_names(row.get("genres")))
        evidence.append(EvidenceItem(int(row["item_id"]), clean_text(row.get("title")), own,
                                     tuple(g for g in own if g in genres),
                                     None if rating is None or np.isnan(rating) else float(rating)))
    year = item.get("release_year")
    return Evidence(int(item["item_id"]), clean_text(item.get("title")), genres,
                    None if year is None else int(year), tuple(evidence),
                    tuple(clean_text(h.get("title")) for h in all_history))


# --- the prompt ------------------------------------------------------------------------------------
EXPLAINER_PROMPT_VERSION = "4"
SYSTEM_PROMPT = "You explain movie recommendations in one short sentence, using only the facts given."


def _described(title: str, genres: Sequence[str], year: int | None = None) -> str:
    details = ([str(year)] if year else []) + ([", ".join(genres)] if genres else [])
    return f'"{display_title(title)}"' + (f" ({'; '.join(details)})" if details else "")


def explanation_messages(evidence: "Evidence", noun: str = "movie") -> list[dict[str, str]]:
    """The grounded instruction for one (user, item): chat messages for the explainer's template."""
    lines = [f"The user liked these {noun}s:"]
    for e in evidence.items:
        rated = f", they rated it {e.rating:g}/5" if e.rating is not None else ""
        lines.append(f"- {_described(e.title, e.genres)}{rated}")
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
        title += f", {_article(kinds)} {kinds} film,"
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


# --- the check -------------------------------------------------------------------------------------
@dataclass
class CatalogueIndex:
    """Title and genre vocabularies of a catalogue, prepared once per worker for `check`."""
    titles: dict[str, int]          # normalised title form -> item id (multi-word or long titles only)
    genres: dict[str, tuple[str, ...]]   # genre name as in the catalogue -> stems that name it

    @classmethod
    def of(cls, catalogue: Sequence[Mapping]) -> "CatalogueIndex":
        titles = {}
        for row in catalogue:
            for form in title_forms(row.get("title") or ""):
                if len(form.split()) >= 2 or len(form) >= 8:        # "heat" is a word, "fargo" too
                    titles.setdefault(form, int(row["item_id"]))
        names = {g for row in catalogue for g in genre_names(row.get("genres"))}
        genres = {g: _GENRE_STEMS.get(g.lower(), (g.lower(),)) for g in names}
        # common genre words the catalogue does not use are never supported by its evidence either
        known = {g.lower() for g in names}
        genres.update({g.title(): stems for g, stems in _GENRE_STEMS.items() if g not in known})
        # the check reads normalised text (letters and digits): "sci-fi" is "sci fi" there
        genres = {g: tuple(dict.fromkeys(normalise(s) for s in stems)) for g, stems in genres.items()}
        return cls(titles, genres)


def _contains(haystack: str, needle: str) -> bool:
    return f" {needle} " in f" {haystack} "


def check(text: str, evidence: Evidence, index: CatalogueIndex) -> str | None:
    """None when `text` is a faithful explanation of `evidence`, else the first reason it is not."""
    text = clean_text(text)
    words = text.split()
    if len(words) < 4:
        return "empty"
    if len(words) > MAX_WORDS:
        return "too_long"
    lowered = normalise(text).split()
    trigrams = [tuple(lowered[i:i + 3]) for i in range(len(lowered) - 2)]
    if trigrams and max(trigrams.count(t) for t in set(trigrams)) >= 3:
        return "repetition"
    allowed = title_forms(evidence.title)
    for title in evidence.history_titles or [e.title for e in evidence.items]:
        allowed |= title_forms(title)
    for match in _QUOTED.finditer(text):
        quoted = normalise(match.group(1) or match.group(2))
        if quoted and quoted not in allowed:
            return f"unknown_title: {(match.group(1) or match.group(2))[:60]}"
    body = normalise(text)
    if not any(_contains(body, form) for form in title_forms(evidence.title)):
        return "no_item"
    history_forms = allowed - title_forms(evidence.title)
    if not any(_contains(body, form) for form in history_forms):
        return "no_history"
    # drop the allowed titles, longest first, so their words are not read as other titles or genres
    for form in sorted(allowed, key=len, reverse=True):
        body = f" {body} ".replace(f" {form} ", " | ").strip()
    for form, item_id in index.titles.items():
        if _contains(body, form):
            return f"unknown_title: {form}"
    # a genre named must be the recommended item's own: the sentence is about why *it* suits the user
    # (an evidence item's genre would be read as the item's: "Liar Liar ... a drama, musical")
    spoken = f" {body} "
    for genre, stems in index.genres.items():
        if genre not in evidence.genres and any(f" {stem}" in spoken for stem in stems):
            return f"unsupported_genre: {genre}"
    # a rating may only be stated right after the evidence title it belongs to: '"Fargo" (4/5)'
    for match in _RATING.finditer(text):
        before = normalise(text[:match.start()])
        if not any(e.rating == float(match.group(1)) and _rates(before, e.title) for e in evidence.items):
            return f"unsupported_rating: {match.group(0)}"
    return None


_RATING_GAP = {"rated", "which", "you", "they", "gave", "a", "at", "with"}


def _rates(before: str, title: str) -> bool:
    """Whether normalised text `before` ends with `title` and at most a few rating words after it."""
    for form in title_forms(title):
        at = f" {before}".rfind(f" {form}")
        if at >= 0:
            gap = f" {before}"[at + len(form) + 1:].split()
            if len(gap) <= 4 and set(gap) <= _RATING_GAP:
                return True
    return False


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
    shared = [g for g in evidence.genres if any(g in e.shared_genres for e in cited)]
    why = f"another {shared[0].lower()} film" if shared else "which the model places close to them"
    return f"Because you {verb} {quoted}, we recommend {title}, {why}."


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
