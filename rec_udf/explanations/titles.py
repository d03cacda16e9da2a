"""How explanations spell titles and genres: normalised text for matching, MovieLens titles as a
person writes them, and the catalogue's genre names."""
from __future__ import annotations

import re

from rec_udf.textualizer import clean_text

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


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def genre_names(genres) -> list[str]:
    return [clean_text(g) for g in (genres if genres is not None else ()) if clean_text(g)
            and clean_text(g).lower() != "unknown"]
