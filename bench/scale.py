"""Scale curve: synthetic warehouses of growing size, each through `lakerec generate`, `textualize`
and `score` as a user runs them (separate processes), with wall time, peak RSS of the whole process
group (driver + JVM + Python workers) and time per user of each step.

Scoring uses the registered champion (MovieLens-100K after `make demo`): synthetic prompts have no
items it knows, so they score on their text alone -- the work per user is the real one (prompt
lengths as generated), the recommendations are not meaningful.

Usage: python bench/scale.py [--sizes 1000,10000,100000] [--steps generate,textualize,score]
                             [--explain-top-k 0] [--keep]
Appends to bench/results/scale.md, writes bench/results/scale.json and scale.png."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import results_io

ROOT = Path(__file__).resolve().parent.parent
RUN_DATE = "2026-01-01"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="users per warehouse, comma-separated")
    p.add_argument("--items-per-user", type=float, default=0.2, help="catalogue size = users x this")
    p.add_argument("--steps", default="generate,textualize,score")
    p.add_argument("--explain-top-k", type=int, default=0, help="explanations per user when scoring")
    p.add_argument("--keep", action="store_true", help="keep the synthetic warehouses")
    return p.parse_args()


def step(name: str, args: list[str], common: list[str]) -> dict:
    """Run one `lakerec` command under bench/peak_rss.sh; its wall time, peak RSS and job summary."""
    cmd = [str(ROOT / "bench" / "peak_rss.sh"), str(Path(sys.executable).parent / "lakerec"), name, *args, *common]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    summary = next((line for line in proc.stdout.splitlines() if f"lakerec {name} " in line), "")
    measured = re.search(r"wall_s=([\d.]+) peak_rss_mib=(\d+) rc=(\d+)", proc.stderr)
    if proc.returncode != 0 or not measured:
        raise SystemExit(f"lakerec {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"wall_s": float(measured.group(1)), "peak_rss_mib": int(measured.group(2)), "summary": summary}


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']} -- {r['machine']}, explanations per user {r['explain_top_k']}\n", f"`{command}`\n",
             "| users | step | wall s | ms per user | marginal ms per user | peak RSS MiB |", "|---|---|---|---|---|---|"]
    for size, steps in r["sizes"].items():
        for name, v in steps.items():
            marginal = "-" if v.get("marginal_ms_per_user") is None else f"{v['marginal_ms_per_user']:.1f}"
            lines.append(f"| {int(size):,} | {name} | {v['wall_s']:.0f} | {v['ms_per_user']:.1f} | {marginal} | "
                         f"{v['peak_rss_mib']} |")
    lines.append("\nms per user = wall / users, start-up included; marginal = the extra wall time per extra user "
                 "since the previous size (start-up cancels out).")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sizes = [int(s) for s in r["sizes"]]
    for name in next(iter(r["sizes"].values())):
        ax.plot(sizes, [r["sizes"][str(s)][name]["ms_per_user"] for s in sizes], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("users")
    ax.set_ylabel("wall ms per user (flat is good)")
    ax.set_title(f"{r['machine']}, {r['date']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    steps = args.steps.split(",")
    home = Path(os.environ.get("LAKEREC_HOME", Path.home() / ".cache" / "lakerec"))
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "explain_top_k": args.explain_top_k, "sizes": {}}
    previous = None
    for users in sizes:
        root = home / f"bench-warehouse-{users}"
        shutil.rmtree(root, ignore_errors=True)
        common = ["--run-date", RUN_DATE, "--set", f"warehouse_root={root}",
                  "--set", f"score.explain_top_k={args.explain_top_k}"]
        r["sizes"][str(users)] = out = {}
        for name in steps:
            extra = (["--users", str(users), "--items", str(max(100, int(users * args.items_per_user))), "--seed", "1"]
                     if name == "generate" else [])
            out[name] = step(name, extra, common)
            out[name]["ms_per_user"] = round(1000 * out[name]["wall_s"] / users, 2)
            if previous:
                before = r["sizes"][str(previous)][name]["wall_s"]
                out[name]["marginal_ms_per_user"] = round(1000 * (out[name]["wall_s"] - before) / (users - previous), 2)
            print(users, name, out[name], file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        previous = users
    print(results_io.save("scale", r, markdown, plot))


if __name__ == "__main__":
    main()
