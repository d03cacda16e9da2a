"""Which evidence and prompt make the explainer's first attempt pass the check: the rank-1 items of a
scored run, explained by the champion's explainer with one greedy attempt each, under variants of
the evidence order and of the prompt's history lines, all judged by today's check.

  python bench/explanation_variants.py [--run-date 1998-04-23] [--users 300]

Variants (each on the same users and items, one after the other in one process):
- closest, all genres: evidence by closeness and ratings alone; history lines with each item's own
  genres (LakeRec before 2026-12-06, prompt version 4);
- genre-sharing first, all genres: evidence prefers items sharing a genre with the recommended one;
- genre-sharing first, shared genres (served): history lines list only the genres shared with it
  (prompt version 5).
Reported: first-attempt pass rate, the check's reasons, and the passing sentences' most common
reasons. Writes bench/results/explanation_variants.{json,md}.
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.results_io import save  # noqa: E402
from lakerec.config import load_conf  # noqa: E402
from lakerec.registry import Registry  # noqa: E402
from rec_udf import explanations as ex  # noqa: E402
from rec_udf.explainer import checked  # noqa: E402
from rec_udf.recommender import Recommender  # noqa: E402

VARIANTS = (("closest, all genres", False, "all"), ("genre-sharing first, all genres", True, "all"),
            ("genre-sharing first, shared genres (served)", True, "shared"))


def rank_one(root: Path, run_date: str, users: int):
    """(history ids, ratings, rank-1 item id) of the first `users` users of the run, by user id."""
    from deltalake import DeltaTable
    prompts = DeltaTable(str(root / "lakerec.db" / "prompts")).to_pandas(
        columns=["user_id", "run_date", "sequence_item_ids", "sequence_ratings"])
    prompts = prompts[prompts["run_date"].astype(str) == run_date].set_index("user_id")
    recs = DeltaTable(str(root / "recs.db" / "user_recommendations")).to_pandas(
        columns=["user_id", "run_date", "rank", "item_id", "variant"])
    recs = recs[(recs["run_date"].astype(str) == run_date) & (recs["rank"] == 1) & (recs["variant"] == "default")]
    recs = recs.sort_values("user_id").head(users)
    return [(list(prompts.loc[u, "sequence_item_ids"]), list(prompts.loc[u, "sequence_ratings"]), int(i))
            for u, i in zip(recs["user_id"], recs["item_id"])]


def reason_of(text: str) -> str:
    """The last clause of a sentence: what the explainer itself wrote after the answer's opening."""
    return re.split(r'", it', text, maxsplit=1)[-1].strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-date", default="1998-04-23")
    parser.add_argument("--users", type=int, default=300)
    args = parser.parse_args()
    conf = load_conf(None, [])
    registry = Registry.from_conf(conf)
    version = registry.resolve("champion").name
    recommender = Recommender.open(registry.bundle_dir(version, "fp32"), prefer="cpu", explainer=True)
    explainer = recommender.explainer
    rows = rank_one(Path(conf.require("warehouse_root")) / "tables", args.run_date, args.users)
    results = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
               "model": version, "run_date": args.run_date, "users": len(rows), "check_version": ex.CHECK_VERSION,
               "variants": {}}
    positions = recommender.catalogue_index([item for _, _, item in rows])
    if (positions < 0).any():
        raise SystemExit(f"{int((positions < 0).sum())} recommended items are not in {version}'s catalogue")
    for name, prefer_shared, history_genres in VARIANTS:
        evidence = [recommender.evidence(int(p), history, ratings, prefer_shared_genres=prefer_shared)
                    for p, (history, ratings, _) in zip(positions, rows)]
        prompts = [explainer.tokenizer.apply_chat_template(
                       json.dumps(ex.explanation_messages(e, recommender.noun, history_genres)), add_generation_prompt=True)
                   + ex.answer_prefix(e) for e in evidence]
        start = time.perf_counter()
        raw = explainer.generate(prompts)
        seconds = time.perf_counter() - start
        said = [checked(e, ex.answer_prefix(e) + r, recommender.title_index) for e, r in zip(evidence, raw)]
        reasons = collections.Counter((s.rejected or "").split(":")[0] for s in said if s.source == ex.SOURCE_FALLBACK)
        passed = [s.text for s in said if s.source == ex.SOURCE_LLM]
        results["variants"][name] = {
            "pass_rate": round(len(passed) / len(said), 3), "passed": len(passed), "seconds": round(seconds, 1),
            "reasons": dict(reasons.most_common()),
            "shares_a_genre": round(sum(bool(e.items and e.items[0].shared_genres) for e in evidence) / len(evidence), 3),
            "common_reasons": collections.Counter(reason_of(t) for t in passed).most_common(8),
            "sample": passed[:8]}
        print(name, {k: v for k, v in results["variants"][name].items() if k != "sample"}, flush=True)
    print(save("explanation_variants", results, markdown, lambda r, p: None))


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']} -- {r['machine']}; champion {r['model']}, rank-1 items of {r['run_date']}, "
             f"{r['users']} users, check version {r['check_version']}\n",
             f"`{command}`\n",
             "| variant | first attempt passes | cited item shares a genre | reasons it failed |", "|---|---|---|---|"]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['pass_rate']:.1%} ({v['passed']}) | {v['shares_a_genre']:.1%} | "
                     f"{', '.join(f'{k} {n}' for k, n in v['reasons'].items())} |")
    for name, v in r["variants"].items():
        lines += ["", f"{name}: the passing sentences' most common reasons (after `\", it`):", ""]
        lines += [f"- {n} x `{text}`" for text, n in v["common_reasons"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
