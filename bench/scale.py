"""Scale curve: synthetic warehouses of growing size, each through the nightly chain as a user runs it,
one process per step (`lakerec generate`, `validate`, `textualize`, `score`, `check`), with per step:
wall time, ms per user (total, and marginal since the previous size), peak RSS of the whole process
session (driver + JVM + Python workers) and of the largest single Spark Python worker, and the Delta
data files the step wrote (count, MiB).

Scoring uses a registered model (`--model`, default the champion; MovieLens-100K after `make demo`).
The synthetic catalogue has `--items` items (default 1,682, MovieLens-100K's size: a warehouse's
catalogue does not grow with its users), so synthetic histories are over item ids the model knows and
the work per user is the real one; the recommendations themselves are not meaningful.

Usage: python bench/scale.py [--sizes 10000,100000,1000000] [--steps generate,validate,textualize,score,check]
                             [--model champion] [--items 1682] [--explain-top-k 0] [--keep]
Appends to bench/results/scale.md, writes bench/results/scale.json (one key per size) and scale.png."""
from __future__ import annotations

import argparse
import datetime as dt
import json
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
    p.add_argument("--sizes", default="10000,100000,1000000", help="users per warehouse, comma-separated")
    p.add_argument("--items", type=int, default=1682, help="catalogue size, the same at every size")
    p.add_argument("--steps", default="generate,validate,textualize,score,check")
    p.add_argument("--model", default="champion", help="registered version the score step uses")
    p.add_argument("--name", default="scale", help="results file name under bench/results/")
    p.add_argument("--explain-top-k", type=int, default=0, help="explanations per user when scoring")
    p.add_argument("--keep", action="store_true", help="keep the synthetic warehouses")
    return p.parse_args()


def data_files(root: Path) -> dict[str, int]:
    """Every Delta data file under the warehouse: path -> bytes."""
    return {str(f): f.stat().st_size for f in root.rglob("*.parquet") if "_delta_log" not in f.parts}


def step(name: str, args: list[str], common: list[str], root: Path) -> dict:
    """Run one `lakerec` command under bench/peak_rss.sh: its wall time, peak RSS (session and largest
    Python worker), the data files it wrote and its job summary line."""
    before = data_files(root) if root.exists() else {}
    cmd = [str(ROOT / "bench" / "peak_rss.sh"), str(Path(sys.executable).parent / "lakerec"), name, *args, *common]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    summary = next((line for line in proc.stdout.splitlines() if f"lakerec {name} " in line), "")
    measured = re.search(r"wall_s=([\d.]+) peak_rss_mib=(\d+) worker_peak_rss_mib=(\d+) rc=(\d+)", proc.stderr)
    if proc.returncode != 0 or not measured:
        raise SystemExit(f"lakerec {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    written = {path: size for path, size in data_files(root).items() if path not in before}
    return {"wall_s": float(measured.group(1)), "peak_rss_mib": int(measured.group(2)),
            "worker_peak_rss_mib": int(measured.group(3)), "files_written": len(written),
            "mib_written": round(sum(written.values()) / 2**20, 1), "summary": summary}


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']} -- {r['machine']}; model {r['model']}, {r['items']:,} items, "
             f"explanations per user {r['explain_top_k']}\n", f"`{command}`\n",
             "| users | step | wall s | ms per user | marginal ms per user | peak RSS MiB (all) | "
             "largest Python worker MiB | data files written | MiB written |", "|---|---|---|---|---|---|---|---|---|"]
    for size, steps in r["sizes"].items():
        for name, v in steps.items():
            marginal = "-" if v.get("marginal_ms_per_user") is None else f"{v['marginal_ms_per_user']:.3f}"
            lines.append(f"| {int(size):,} | {name} | {v['wall_s']:.0f} | {v['ms_per_user']:.3f} | {marginal} | "
                         f"{v['peak_rss_mib']} | {v['worker_peak_rss_mib']} | {v['files_written']} | "
                         f"{v['mib_written']} |")
    sizes = list(r["sizes"])
    if len(sizes) > 1:
        first, last = r["sizes"][sizes[0]], r["sizes"][sizes[-1]]
        lines += ["", f"| step | ms per user at {int(sizes[-1]):,} / at {int(sizes[0]):,} |", "|---|---|"]
        small, large = int(sizes[0]), int(sizes[-1])
        lines += [f"| {name} | {(last[name]['wall_s'] / large) / (first[name]['wall_s'] / small):.3f} |"
                  for name in first if name in last]
    if len(sizes) > 2:   # the marginal cost of the last step up against the first: start-up cancels out
        second = r["sizes"][sizes[1]]
        lines += ["", f"| step | marginal ms per user {int(sizes[-2]):,} -> {int(sizes[-1]):,} / "
                      f"{int(sizes[0]):,} -> {int(sizes[1]):,} |", "|---|---|"]
        lines += [f"| {name} | {last[name]['marginal_ms_per_user'] / second[name]['marginal_ms_per_user']:.2f} |"
                  for name in second if name in last and second[name].get("marginal_ms_per_user")]
    lines.append("\nms per user = wall / users, start-up included; marginal = the extra wall time per extra user "
                 "since the previous size (start-up cancels out). A largest Python worker of ~54 MiB is the idle pyspark "
                 "daemon: that step ran no Python UDF.")
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
         "model": args.model, "items": args.items, "explain_top_k": args.explain_top_k, "sizes": {}}
    previous = None
    for users in sizes:
        root = home / f"bench-warehouse-{users}"
        shutil.rmtree(root, ignore_errors=True)
        common = ["--run-date", RUN_DATE, "--set", f"warehouse_root={root}",
                  "--set", f"score.explain_top_k={args.explain_top_k}"]
        r["sizes"][str(users)] = out = {}
        for name in steps:
            extra = {"generate": ["--users", str(users), "--items", str(args.items), "--seed", "1"],
                     "score": ["--model", args.model]}.get(name, [])
            out[name] = step(name, extra, common, root)
            out[name]["ms_per_user"] = round(1000 * out[name]["wall_s"] / users, 4)
            if previous:
                before = r["sizes"][str(previous)][name]["wall_s"]
                out[name]["marginal_ms_per_user"] = round(1000 * (out[name]["wall_s"] - before) / (users - previous), 4)
            print(users, name, out[name], file=sys.stderr, flush=True)
            results_io.RESULTS.mkdir(exist_ok=True)   # each step kept as it finishes (the 1M point takes an hour)
            (results_io.RESULTS / f"{args.name}.partial.json").write_text(json.dumps(r, indent=2))
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        previous = users
    print(results_io.save(args.name, r, markdown, plot))
    (results_io.RESULTS / f"{args.name}.partial.json").unlink()


if __name__ == "__main__":
    main()
