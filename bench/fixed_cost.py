"""A job's fixed cost, side by side: the same `lakerec` steps on one small warehouse, each run as a
process of its own as a nightly chain runs it, with the driver JVM's class-data sharing on and off
(`spark.class_data_sharing`, lakerec/class_sharing.py), alternating, `--repeats` times each. Reports
the median wall time per step and condition, and their ratio.

At 10,000 users a step's work is a second or two: what is measured is mostly start-up and first-use
cost (JVM, metastore, Delta, first queries), the part of a nightly run that does not grow with users.

Usage: python bench/fixed_cost.py [--users 10000] [--steps validate,textualize,score,check] [--repeats 3]
Appends to bench/results/fixed_cost.md, writes fixed_cost.json and fixed_cost.png."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

import results_io
from scale import RUN_DATE, step

CONDITIONS = {"sharing on": "true", "sharing off": "false"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=1682)
    p.add_argument("--steps", default="validate,textualize,score,check")
    p.add_argument("--model", default="champion", help="registered version the score step uses")
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args()


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']} -- {r['machine']}; {r['users']:,} users, median of {r['repeats']} alternating runs\n",
             f"`{command}`\n",
             "| step | class-data sharing on: wall s | off: wall s | on / off | runs on | runs off |",
             "|---|---|---|---|---|---|"]
    for name, v in r["steps"].items():
        on, off = v["sharing on"], v["sharing off"]
        lines.append(f"| {name} | {on['median_s']:.1f} | {off['median_s']:.1f} | {on['median_s'] / off['median_s']:.2f} | "
                     f"{', '.join(f'{s:.1f}' for s in on['wall_s'])} | {', '.join(f'{s:.1f}' for s in off['wall_s'])} |")
    total_on = sum(v["sharing on"]["median_s"] for v in r["steps"].values())
    total_off = sum(v["sharing off"]["median_s"] for v in r["steps"].values())
    lines.append(f"| all steps | {total_on:.1f} | {total_off:.1f} | {total_on / total_off:.2f} | | |")
    lines.append("\nwall s: the whole process, start to exit (`bench/peak_rss.sh`); the archive existed before the "
                 "first run (written once by an earlier job).")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(r["steps"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (label, _) in enumerate(CONDITIONS.items()):
        ax.bar([j + 0.4 * i for j in range(len(names))], [r["steps"][n][label]["median_s"] for n in names],
               width=0.4, label=label)
    ax.set_xticks([j + 0.2 for j in range(len(names))], names)
    ax.set_ylabel("median wall s per process")
    ax.set_title(f"{r['users']:,} users, {r['machine']}, {r['date']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    steps = args.steps.split(",")
    home = Path(os.environ.get("LAKEREC_HOME", Path.home() / ".cache" / "lakerec"))
    root = home / f"bench-fixed-cost-{args.users}"
    shutil.rmtree(root, ignore_errors=True)
    common = ["--run-date", RUN_DATE, "--set", f"warehouse_root={root}", "--set", "score.explain_top_k=0"]
    # the whole chain once, untimed: every step's input exists, and the class archive is written
    step("generate", ["--users", str(args.users), "--items", str(args.items), "--seed", "1"], common, root)
    for name in ("validate", "textualize", "score"):
        step(name, ["--model", args.model] if name == "score" else [], common, root)
    from lakerec import class_sharing
    from lakerec.config import load_conf
    archive = class_sharing.archive_path(load_conf(None, [f"warehouse_root={root}"]))
    if archive is None or not archive.exists():
        raise SystemExit(f"no class archive at {archive} after the set-up: the 'on' runs would include writing it")
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "users": args.users, "repeats": args.repeats, "steps": {}}
    for name in steps:
        r["steps"][name] = {label: {"wall_s": []} for label in CONDITIONS}
        extra = ["--model", args.model] if name == "score" else []
        for _ in range(args.repeats):
            for label, value in CONDITIONS.items():
                measured = step(name, extra, common + ["--set", f"spark.class_data_sharing={value}"], root)
                r["steps"][name][label]["wall_s"].append(measured["wall_s"])
                print(name, label, measured["wall_s"], file=sys.stderr, flush=True)
        for label in CONDITIONS:
            r["steps"][name][label]["median_s"] = statistics.median(r["steps"][name][label]["wall_s"])
    shutil.rmtree(root, ignore_errors=True)
    print(results_io.save("fixed_cost", r, markdown, plot))


if __name__ == "__main__":
    main()
