"""Model quality on MovieLens-100K: runs `lakerec train --profile full` (3 seeds, every user, every model
on the same leave-one-out split and users) and writes bench/results/quality_ml100k.json and .md:

  {"date", "machine", "command", "minutes", "users", "models": {"<model>": {"ndcg@10": [per seed], ...}},
   "paired_hybrid_vs_sasrec": {seed: paired bootstrap of per-user NDCG@10},
   "paired_hybrid_vs_id_model": {seed: the same against the ID model, when it is a seed ensemble}}

plus the run's full training report (report.md) beside it. Needs MovieLens ingested (`lakerec ingest`).

    python bench/quality.py [--profile full] [--run-date 1998-04-23] [--set key=value ...]
"""
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
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores, no GPU" if cpu else platform.platform()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--run-date", default="1998-04-23")
    parser.add_argument("--name", default="quality_ml100k")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    command = ["lakerec", "train", "--profile", args.profile, "--run-date", args.run_date,
               "--set", "train.promote=false", *[x for s in args.set for x in ("--set", s)]]
    start = time.time()
    done = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, text=True)
    minutes = (time.time() - start) / 60
    print(done.stdout)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed with exit code {done.returncode}")
    report = Path(re.search(r"report: (\S+report\.md)", done.stdout).group(1))
    quality = json.loads((report.parent / "quality.json").read_text())
    users = quality["models"]["sasrec"]["users"][0]
    results = {"date": dt.date.today().isoformat(), "machine": machine(), "command": " ".join(command),
               "minutes": round(minutes, 1), "users": int(users), **quality}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2))
    text = report.read_text()
    header = (f"<!-- {results['date']}, {results['machine']}, {results['minutes']} min: "
              f"python bench/quality.py {' '.join(sys.argv[1:])} -->\n\n")
    (RESULTS / f"{args.name}.md").write_text(header + text)
    if (report.parent / "report.png").exists():
        shutil.copy(report.parent / "report.png", RESULTS / f"{args.name}.png")
    print(f"wrote {RESULTS / (args.name + '.json')} ({results['minutes']} min)")


if __name__ == "__main__":
    main()
