"""The one textualizer: user profile + chronological history -> a natural-language prompt.

After RecSysLLM, every history entity (an item with its title, year, genres and the user's
rating) is one delimited unit whose character span is returned with the text, so that masking
(at training) and truncation (here) never cut inside an entity. The history is fitted to a token
budget by dropping the OLDEST whole entities. Pure Python: training, the Spark textualize job and
the scoring executors all call this module, so a prompt is byte-identical wherever it is built.

Changing how text is rendered is a new TEMPLATE_VERSION; the template hash also covers the spec
(nouns, verb), so a bundle can refuse prompts rendered by a different template.
"""
from __future__ import annotations

import functools
import zlib
import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

TEMPLATE_NAME = "user_history"
TEMPLATE_VERSION = "1.1.0"         # 1.1: same-second events ordered by tie_order, no longer by item id
DEFAULT_SPEC = {"item_noun_plural": "movies", "history_verb": "watched"}


def item_noun(spec: dict) -> str:
    """The singular item noun of a template spec ("movies" -> "movie"), for task sentences."""
    return spec.get("item_noun_plural", "items").removesuffix("s")
ENTITY_SEPARATOR = "; "

_PRETOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_SPACE = re.compile(r"\s+")


def count_pretokens(text: str) -> int:
    """Default token counter: words and single punctuation marks (BERT's basic pre-tokenization).
    A lower bound on word-piece counts; a real tokenizer can be passed as `count_tokens`."""
    return len(_PRETOKEN.findall(text))


def clean_text(value: Any) -> str:
    """NFC-normalise, drop control characters, collapse whitespace."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def template_hash(spec: Mapping[str, str] | None = None) -> str:
    payload = json.dumps({"name": TEMPLATE_NAME, "version": TEMPLATE_VERSION,
                          "spec": dict(spec or DEFAULT_SPEC)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _cached_hash(spec_items: tuple) -> str:
    return template_hash(dict(spec_items))


@dataclass(frozen=True)
class EntitySpan:
    item_id: int
    start: int  # character offsets into Prompt.text, end exclusive
    end: int


@dataclass(frozen=True)
class Prompt:
    text: str
    entities: tuple[EntitySpan, ...]
    history_item_ids: tuple[int, ...]   # the items kept in the text, oldest first
    n_history_total: int                # before the cap and the token budget
    n_tokens: int
    template_name: str = TEMPLATE_NAME
    template_version: str = TEMPLATE_VERSION
    template_hash: str = field(default="")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:g}"


def profile_sentence(user: Mapping[str, Any]) -> str:
    """'User 7 is a 57-year-old man, an administrator, from zip code 91344.' (fields optional)"""
    who = []
    age = user.get("age")
    gender = clean_text(user.get("gender")).lower()
    noun = {"m": "man", "male": "man", "f": "woman", "female": "woman"}.get(gender, "person")
    if not _is_missing(age):
        who.append(f"a {_number(age)}-year-old {noun}")
    elif gender:
        who.append(f"a {noun}")
    if gender and noun == "person":
        who.append(f"of gender {clean_text(user.get('gender'))}")
    occupation = clean_text(user.get("occupation"))
    if occupation and occupation.lower() not in ("none", "other"):
        article = "an" if occupation[0].lower() in "aeiou" else "a"
        who.append(f"{article} {occupation}")
    zip_code = clean_text(user.get("zip_code"))
    if zip_code:
        who.append(f"from zip code {zip_code}")
    return f"User {user['user_id']} is {', '.join(who)}." if who else f"User {user['user_id']}."


def entity_text(item: Mapping[str, Any]) -> str:
    """'"Toy Story" (1995; Animation, Comedy) rated 4/5' -- one indivisible unit."""
    title = clean_text(item.get("title")) or f"item {item['item_id']}"
    details = []
    if not _is_missing(item.get("release_year")):
        details.append(_number(item["release_year"]))
    genres = [clean_text(g) for g in (item.get("genres") if item.get("genres") is not None else ())]
    genres = [g for g in genres if g and g.lower() != "unknown"]
    if genres:
        details.append(", ".join(genres))
    text = f'"{title}"' + (f" ({'; '.join(details)})" if details else "")
    if not _is_missing(item.get("rating")):
        text += f" rated {_number(item['rating'])}/5"
    return text


def tie_order(user_id: Any, item_id: Any) -> int:
    """The order of a user's events that share a timestamp (MovieLens has many same-second ratings):
    CRC-32 of "user_id:item_id". Not the item id itself: ordering ties by id plants a pattern
    (ids rise within a session) that an ID model learns and a leave-one-out test rewards, though
    no real next item follows it. Spark computes the same number (lakerec.sources.schema.tie_order_column)."""
    return zlib.crc32(f"{int(user_id)}:{int(item_id)}".encode())


def _sort_key(item: Mapping[str, Any], user_id: Any):
    """Oldest first, undated entries before dated ones, ties by `tie_order`."""
    when = item.get("event_time")
    return (when is not None, when, tie_order(user_id, item["item_id"]), int(item["item_id"]))


def _epoch_sort_key(item: Mapping[str, Any], user_id: Any):
    """Fallback for histories mixing time types that do not compare (e.g. datetime and epoch seconds)."""
    when = item.get("event_time")
    if hasattr(when, "timestamp"):
        when = when.timestamp()
    return (when is not None, when if when is not None else 0.0, tie_order(user_id, item["item_id"]),
            int(item["item_id"]))


def chronological(history: Iterable[Mapping[str, Any]], user_id: Any) -> list:
    try:
        return sorted(history, key=lambda item: _sort_key(item, user_id))
    except TypeError:
        return sorted(history, key=lambda item: _epoch_sort_key(item, user_id))


def _assemble(head: str, intro: str, entity_texts: Sequence[str], empty: str):
    """Join the pieces; return (text, [(start, end)] per entity)."""
    if not entity_texts:
        return f"{head} {empty}", []
    text = f"{head} {intro}"
    spans = []
    for i, piece in enumerate(entity_texts):
        if i:
            text += ENTITY_SEPARATOR
        spans.append((len(text), len(text) + len(piece)))
        text += piece
    return text + ".", spans


def textualize(user: Mapping[str, Any], history: Iterable[Mapping[str, Any]], *,
               max_tokens: int, max_items: int | None = None,
               spec: Mapping[str, str] | None = None,
               count_tokens: Callable[[str], int] = count_pretokens) -> Prompt:
    """Render one user's prompt. `history` entries carry item_id, title, release_year, genres,
    rating and event_time; they are ordered chronologically here (ties by `tie_order`)."""
    spec = dict(spec or DEFAULT_SPEC)
    ordered = chronological(history, user["user_id"])
    total = len(ordered)
    if max_items is not None and total > max_items:
        ordered = ordered[total - max_items:]
    head = profile_sentence(user)
    plural, verb = spec["item_noun_plural"], spec["history_verb"]
    intro = f"{plural.capitalize()} {verb}, oldest first: "
    empty = f"No {plural} {verb} yet."
    # Render from the newest entity backwards and stop at the first that does not fit (entities
    # older than the budget are never rendered), using per-piece counts ...
    budget = max_tokens - count_tokens(f"{head} {intro}.")
    sep_cost = count_tokens(ENTITY_SEPARATOR)
    pieces: list[str] = []
    for item in reversed(ordered):
        piece = entity_text(item)
        cost = count_tokens(piece) + (sep_cost if pieces else 0)
        if cost > budget:
            break
        budget -= cost
        pieces.append(piece)
    pieces.reverse()
    # ... then verify on the assembled text (a tokenizer need not be additive) and drop more if needed.
    while True:
        text, spans = _assemble(head, intro, pieces, empty)
        n_tokens = count_tokens(text)
        if n_tokens <= max_tokens or not pieces:
            break
        pieces = pieces[1:]
    kept = ordered[len(ordered) - len(pieces):]
    entities = tuple(EntitySpan(int(item["item_id"]), s, e) for item, (s, e) in zip(kept, spans))
    return Prompt(text=text, entities=entities,
                  history_item_ids=tuple(int(item["item_id"]) for item in kept),
                  n_history_total=total, n_tokens=n_tokens,
                  template_hash=_cached_hash(tuple(sorted(spec.items()))))
