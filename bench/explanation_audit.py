"""An independent audit of the explanations in recs.user_recommendations: reads the Delta tables with
the `deltalake` package (no Spark, no LakeRec code), parses every quoted title and every genre word in
the explanations of one run date, and checks them against the warehouse's own rows.

  python bench/explanation_audit.py --run-date 1998-04-23 [--sample 20] [--seed 0]

A quoted title is faithful when it is the recommended item's title or the title of an item the user
interacted with before the end of the run date; a rating "N/5" stated right after a quoted history
title must be the user's rating of it in the interactions table (compared lower-case, letters and digits only, with
MovieLens' "Godfather, The" also read as "The Godfather"). A genre word is faithful when the genre is
the recommended item's or one of the cited evidence items'. Prints the share written by the LLM, the
share faithful, every violation, and a seeded random sample of explanations with their source.
Writes bench/results/explanation_audit.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import save  # noqa: E402

GENRE_WORDS = {"Action": ["action"], "Animation": ["animated", "animation", "cartoon"],
               "Children's": ["children", "kids"], "Comedy": ["comedy", "comedies", "comedic", "funny"],
               "Crime": ["crime", "criminal", "gangster"], "Documentary": ["documentary"], "Drama": ["drama"],
               "Fantasy": ["fantasy", "fantastical"], "Film-Noir": ["noir"], "Horror": ["horror", "scary"],
               "Musical": ["musical"], "Mystery": ["mystery", "mysteries", "mysterious"],
               "Romance": ["romance", "romantic", "love story"], "Sci-Fi": ["sci fi", "science fiction"],
               "Thriller": ["thriller", "thrilling"], "War": ["war film", "war movie", "war drama"],
               "Western": ["western"]}


def simple(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def spellings(title: str) -> set[str]:
    """A title as stored, without its bracketed alternative title, and with a trailing article moved."""
    out = set()
    for form in {title.strip(), re.sub(r"\s*\(.*?\)", "", title).strip()}:
        out.add(simple(form))
        moved = re.match(r"^(.*?), (the|a|an|les|la|le|il|el|die|das|der)(\s*\(.*\))?$", form, re.I)
        if moved:
            out.add(simple(f"{moved.group(2)} {moved.group(1)}{moved.group(3) or ''}"))
    return {f for f in out if f}


def main() -> None:
    from deltalake import DeltaTable
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-date", required=True)
    parser.add_argument("--warehouse", default=str(Path.home() / ".cache/lakerec/warehouse/tables"))
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = Path(args.warehouse)
    day = dt.date.fromisoformat(args.run_date)
    recs = DeltaTable(str(root / "recs.db" / "user_recommendations")).to_pandas()
    recs = recs[(recs["run_date"].astype(str) == args.run_date) & (recs["variant"] == "default")
                & recs["explanation"].notna()]
    items = DeltaTable(str(root / "warehouse.db" / "items")).to_pandas()
    events = DeltaTable(str(root / "warehouse.db" / "interactions")).to_pandas()
    cutoff = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    events = events[events["event_time"] < cutoff]
    title = {i: t or "" for i, t in zip(items["item_id"], items["title"])}
    genres = {i: set(g) if g is not None else set() for i, g in zip(items["item_id"], items["genres"])}
    history = events.groupby("user_id")["item_id"].apply(set).to_dict()
    rated = {(u, i): r for u, i, r in zip(events["user_id"], events["item_id"], events["rating"])}

    violations, borrowed = [], []
    for row in recs.itertuples():
        seen = history.get(row.user_id, set())
        owner: dict[str, set] = {}          # a title may belong to several items (MovieLens has duplicates)
        for i in seen | {row.item_id}:
            for form in spellings(title.get(i, "")):
                owner.setdefault(form, set()).add(i)
        for quoted in re.findall(r'"([^"]+)"', row.explanation):
            if simple(quoted) not in owner:
                violations.append((row.user_id, row.explanation_source, f"quoted title not in history: {quoted}",
                                   row.explanation))
        # a rating stated right after a quoted title ('"Fargo" (4/5)', '"Fargo", rated 4/5') must be the user's
        for quoted, stated in re.findall(r'"([^"]+)"[^"]{0,20}?\b([0-5](?:\.[05])?)\s*/\s*5', row.explanation):
            items = owner.get(simple(quoted), set()) - {row.item_id}
            if items and all(float(rated.get((row.user_id, i), -1)) != float(stated) for i in items):
                violations.append((row.user_id, row.explanation_source,
                                   f"rating {stated}/5 of {quoted} is not the user's", row.explanation))
        words = f" {simple(row.explanation)} "
        for item in list(seen) + [row.item_id]:      # titles are not genre words
            for form in spellings(title.get(item, "")):
                words = words.replace(f" {form} ", " | ")
        evidence = [] if row.evidence_item_ids is None else list(row.evidence_item_ids)
        own = genres.get(row.item_id, set())
        cited = own.union(*(genres.get(i, set()) for i in evidence))
        for genre, forms in GENRE_WORDS.items():
            if any(f" {f}" in words for f in forms):
                if genre not in cited:
                    violations.append((row.user_id, row.explanation_source, f"genre not cited: {genre}",
                                       row.explanation))
                elif genre not in own:      # allowed by the rule, but read as the item's genre
                    borrowed.append((row.user_id, row.explanation_source, genre, row.explanation))
    first = recs[recs["rank"] == 1]
    bad_rows = {(v[0], v[3]) for v in violations}
    rng = random.Random(args.seed)
    sample = rng.sample(list(zip(first["user_id"], first["item_title"], first["explanation_source"],
                                 first["explanation"])), min(args.sample, len(first)))
    results = {"run_date": args.run_date, "explanations": int(len(recs)), "rank1": int(len(first)),
               "llm_share_rank1": round(float((first["explanation_source"] == "llm").mean()), 4),
               "faithful_share": round(1 - len(bad_rows) / max(len(recs), 1), 4),
               "violations": [list(map(str, v)) for v in violations],
               "evidence_genre_not_the_items": len(borrowed),
               "rejected_reasons": first["explanation_rejected"].fillna("").str.split(":").str[0]
               .value_counts().to_dict(),
               "sample": [{"user_id": int(u), "item": t, "source": s, "explanation": e} for u, t, s, e in sample]}
    print(save("explanation_audit", results, markdown, lambda r, p: None))


def markdown(results: dict, command: str) -> str:
    lines = [f"\n## {dt.date.today()}: explanations of run date {results['run_date']}", f"`{command}`", "",
             f"- rank-1 explanations: {results['rank1']}; written by the LLM and passing LakeRec's check: "
             f"{results['llm_share_rank1']:.1%} (the rest: data-built fallback; reasons {results['rejected_reasons']})",
             f"- faithful by this independent audit (quoted titles in the user's history or the item; genres of the "
             f"item or the cited evidence): {results['faithful_share']:.1%} of {results['explanations']}; "
             f"violations: {len(results['violations'])}",
             f"- explanations naming a genre of a cited history item that the recommended item does not have "
             f"(allowed by the issue's rule, rejected by LakeRec's stricter check): "
             f"{results['evidence_genre_not_the_items']}"]
    lines += [f"  - user {v[0]} ({v[1]}): {v[2]} -- {v[3]}" for v in results["violations"][:20]]
    lines += ["", "Random sample (seeded), unedited:", "", "| user | recommended | source | explanation |",
              "|---|---|---|---|"]
    lines += [f"| {s['user_id']} | {s['item']} | {s['source']} | {s['explanation']} |" for s in results["sample"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
