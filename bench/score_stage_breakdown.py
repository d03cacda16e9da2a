"""Where the score stage's fixed cost goes: in one process, on a synthetic warehouse of `--users`
users, the driver's steps of `lakerec score` timed one by one (choosing and verifying the bundle,
reading the prompts at a pinned Delta version), then the stage itself (`score_prompts`: the
executors' mapInPandas, persisted and counted) three times in the same session. The first run pays
the Python workers' start and the model loads; the later ones find both in place (worker reuse), so
first minus later is that one-off cost, and a later run is the stage's steady cost for these users.

Usage: python bench/score_stage_breakdown.py [--users 10000] [--model champion]
Appends to bench/results/score_stage_breakdown.md, writes score_stage_breakdown.json."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import time
from pathlib import Path

import results_io
from scale import RUN_DATE, step


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=1682)
    p.add_argument("--model", default="champion")
    return p.parse_args()


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']} -- {r['machine']}; {r['users']:,} users, model {r['model']}, JVM class archive "
             f"{'mapped' if r['class_archive_mapped'] else 'written at exit'}\n", f"`{command}`\n",
             "| part (in order, one process) | s |", "|---|---|"]
    lines += [f"| {name} | {seconds:.2f} |" for name, seconds in r["parts"].items()]
    first, later = r["stage_s"][0], min(r["stage_s"][1:])
    lines.append(f"\nThe stage (`users_per_s` of the job summary times this span): {', '.join(f'{s:.2f}' for s in r['stage_s'])} s; "
                 f"first - fastest later = {first - later:.2f} s of worker start and model loads; "
                 f"{r['users'] / first:,.0f} users/s first, {r['users'] / later:,.0f} later.")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    home = Path(os.environ.get("LAKEREC_HOME", Path.home() / ".cache" / "lakerec"))
    root = home / f"bench-breakdown-{args.users}"
    shutil.rmtree(root, ignore_errors=True)
    common = ["--run-date", RUN_DATE, "--set", f"warehouse_root={root}"]
    step("generate", ["--users", str(args.users), "--items", str(args.items), "--seed", "1"], common, root)
    step("validate", [], common, root)
    step("textualize", [], common, root)

    from lakerec.config import load_conf
    from lakerec.scoring.bundle_choice import bundle_for
    from lakerec.scoring.job import read_prompts, target
    from lakerec.scoring.stage import score_prompts
    from lakerec.spark import build_session, stop_session
    parts = {}

    def timed(name, work):
        start = time.perf_counter()
        out = work()
        parts[name] = round(time.perf_counter() - start, 3)
        return out

    from lakerec import class_sharing
    conf = load_conf(None, [f"warehouse_root={root}", "score.explain_top_k=0"])
    archive = class_sharing.archive_path(conf)
    archived = bool(archive and archive.exists())      # else the session's stop includes writing it
    spark = timed("Spark session (JVM start)", lambda: build_session(conf))
    timed("bundle_for: choose and hash-verify the bundle", lambda: bundle_for(
        conf, args.model, dict(spark.sparkContext.getConf().getAll())))
    prompts, _ = timed("read_prompts: first catalog, Delta and query use of the process", lambda: read_prompts(
        spark, target(conf, None, False), dt.date.fromisoformat(RUN_DATE), None))
    stage = []
    for i in range(3):
        scored = timed(f"score_prompts, run {i + 1} (bundle_for, items, stage)",
                       lambda: score_prompts(spark, conf, prompts, args.model))
        stage.append(round(scored.seconds, 3))
        scored.release()
    timed("stop the session, JVM exit", lambda: stop_session(spark))
    shutil.rmtree(root, ignore_errors=True)
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "users": args.users, "model": args.model, "class_archive_mapped": archived, "parts": parts, "stage_s": stage}
    print(results_io.save("score_stage_breakdown", r, markdown, lambda r, path: None))


if __name__ == "__main__":
    main()
