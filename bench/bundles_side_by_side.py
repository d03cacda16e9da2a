"""Two export bundles of the same model, side by side in one run: user-encoding users/s (encoder +
top-k, one ONNX Runtime thread as in a Spark task, the job's batch size, batches of similar
lengths), alternating rounds so that drift on the machine hits both; and whether their top-10 lists
agree. For a change to the exported graphs (old bundle directory vs re-exported one).

Usage: python bench/bundles_side_by_side.py OLD_DIR NEW_DIR [--users 256] [--rounds 3] [--batch-size 4]
Appends to bench/results/bundles_side_by_side.md and writes its .json (no plot)."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
from deltalake import DeltaTable

from lakerec.config import load_conf
from rec_udf.recommender import Recommender

import length_sorted  # bench/, first on sys.path when run as a script
import results_io


def prompts_frame(users: int):
    """The newest prompts of the prompts table (`make demo`), read without Spark."""
    conf = load_conf(None, [])
    db, table = conf.require("tables.prompts").split(".")
    frame = DeltaTable(str(conf.warehouse_root / "tables" / f"{db}.db" / table)).to_pandas()
    return frame[frame["run_date"] == frame["run_date"].max()].head(users)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    frame = prompts_frame(args.users)
    recommenders = {name: Recommender.open(path, prefer="cpu", threads=1)
                    for name, path in (("old", args.old), ("new", args.new))}
    inputs = {name: length_sorted.prepare(recommender, frame) for name, recommender in recommenders.items()}
    seconds = {name: [] for name in recommenders}
    tops = {}
    for _ in range(args.rounds):
        for name, recommender in recommenders.items():
            start = time.perf_counter()
            tops[name] = length_sorted.encode_top_k(recommender, inputs[name], args.batch_size)
            seconds[name].append(time.perf_counter() - start)
    speed = {name: round(len(frame) / min(s), 2) for name, s in seconds.items()}
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
         "old": str(Path(args.old)), "new": str(Path(args.new)), "users": len(frame), "rounds": args.rounds,
         "batch_size": args.batch_size, "users_per_s_best_round": speed,
         "new_vs_old": round(speed["new"] / speed["old"], 3),
         "top10_identical": float(np.mean([list(a) == list(b) for a, b in zip(tops["old"], tops["new"])]))}

    def markdown(r, command):
        return (f"\n## {r['date']} -- {r['machine']}, {r['users']} users, batch {r['batch_size']}, one thread, "
                f"best of {r['rounds']} alternating rounds\n\n`{command}`\n\nold {r['old']}: "
                f"{r['users_per_s_best_round']['old']} users/s; new {r['new']}: {r['users_per_s_best_round']['new']} "
                f"users/s; new/old {r['new_vs_old']}; top-10 lists identical {r['top10_identical']:.1%}\n")
    print(results_io.save("bundles_side_by_side", r, markdown, lambda r, path: None))


if __name__ == "__main__":
    main()
