"""LM training throughput, side by side: this tree's training mix against an older commit's, one
stage-2 epoch (unified prompts, every loss) on the same first N MovieLens users, same batch size,
same machine, one run. Needs the warehouse from `make demo` (or `lakerec ingest`).

Useful tokens are the non-padding tokens of the training examples themselves (the prompts with
their task and answer); padding, and item texts re-encoded at every step, are not useful work.
The epoch's time includes everything the epoch does (for this tree, the once-per-epoch item pass).

This tree runs twice, in fp32 and at its default precision (`llm_train.precision: auto`: bf16
mixed precision on a CPU with AMX / AVX512-BF16), so the mix's gain and the precision's are apart.

    python bench/train_throughput.py [--users 160] [--batch 16] [--old 0a912d0]
Writes bench/results/train_throughput.json and appends to train_throughput.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(users: int, batch: int, precision: str | None) -> dict:
    """One stage-2 epoch with whatever `lakerec` is importable (this tree, or the old one on PYTHONPATH);
    `precision`: this tree's llm_train.precision (the old tree has none: fp32)."""
    import torch

    from lakerec import training
    from lakerec.config import load_conf
    from lakerec.model import examples as examples_module
    from lakerec.model.store import build_model
    from lakerec.model.train_llm import LLMTrainConfig, Trainer
    from lakerec.sources.schema import read_sources
    try:                              # this tree
        from lakerec.id_side import train_id_model
        from lakerec.model.device import device
        from lakerec.profiles import load_profile
    except ModuleNotFoundError:       # the old tree kept them in lakerec.training
        from lakerec.training import device, load_profile, train_id_model
    from lakerec.spark import build_session

    torch.set_num_threads(os.cpu_count() or 1)
    conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
    spark = build_session(conf)
    good = {role: source.df for role, source in read_sources(spark, conf).items()}
    split, text, _ = training.prepare_data(spark, conf, good, dt.date(1998, 4, 23))
    profile = load_profile(conf, "full")
    profile.sasrec_train.epochs, profile.sasrec_train.eval_every = 5, 5
    fitted = train_id_model(split, profile, 0, None, None)
    model, tokenizer, special, _ = build_model(profile.llm, split.n_items, fitted.model.eval())
    model.to(device())
    builder = training.builder_for(conf, text, tokenizer, special)
    config = LLMTrainConfig(**{**profile.llm_train.to_dict(), "max_users": users, "batch_size": batch,
                               "examples_per_user": 1, "log_every": 10**9,
                               **({"precision": precision} if precision else {})})
    counted = {"tokens": 0}
    original = examples_module.ExampleBuilder.example

    def counting(self, *args, **kwargs):
        example = original(self, *args, **kwargs)
        counted["tokens"] += len(example.ids)
        return example
    examples_module.ExampleBuilder.example = counting
    trainer = Trainer(model, builder, fitted.model, config, device())
    params = inspect.signature(trainer.train_epoch).parameters
    start = time.time()
    if "batches" in params:           # this tree: length-grouped batches, two learning rates, warm-up
        from lakerec.model.train_llm import param_groups, warmup_schedule
        batches = trainer._batches(trainer._plan(), True)
        optimizer = torch.optim.AdamW(param_groups(model, config))
        stats = trainer.train_epoch(optimizer, warmup_schedule(optimizer, len(batches), config.warmup), batches,
                                    True, "stage2")
        padded = trainer.tokens_padded
    else:                             # the old mix
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        stats = trainer.train_epoch(optimizer, True, "stage2")
        padded = None
    seconds = time.time() - start
    spark.stop()
    return {"examples": stats["examples"], "seconds": round(seconds, 1),
            "precision": getattr(trainer, "precision", "fp32"),
            "examples_per_s": round(stats["examples"] / seconds, 2),
            "useful_tokens": counted["tokens"], "useful_tokens_per_s": round(counted["tokens"] / seconds, 1),
            "padded_positions": padded}


def run_in(tree: Path, users: int, batch: int, precision: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", "--users", str(users),
                          "--batch", str(batch), *(["--precision", precision] if precision else [])],
                         env=env, cwd=tree, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=160)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--old", default="0a912d0", help="the commit whose training mix is compared")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.users, args.batch, args.precision)))
        return
    with tempfile.TemporaryDirectory(prefix="lakerec-old-") as old:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", old, args.old], check=True,
                       stdout=subprocess.DEVNULL)
        try:
            # this tree twice: in fp32 (what the mix alone gives) and at its default precision ("auto")
            results = {"old": run_in(Path(old), args.users, args.batch),
                       "new_fp32": run_in(REPO, args.users, args.batch, "fp32"),
                       "new": run_in(REPO, args.users, args.batch, "auto")}
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", old], check=False)
    results.update(date=dt.date.today().isoformat(), machine=f"{os.uname().machine}, {os.cpu_count()} cores, no GPU",
                   users=args.users, batch=args.batch, old_commit=args.old,
                   useful_tokens_ratio=round(results["new"]["useful_tokens_per_s"]
                                             / results["old"]["useful_tokens_per_s"], 2),
                   useful_tokens_ratio_fp32=round(results["new_fp32"]["useful_tokens_per_s"]
                                                  / results["old"]["useful_tokens_per_s"], 2),
                   examples_ratio=round(results["new"]["examples_per_s"] / results["old"]["examples_per_s"], 2))
    out = REPO / "bench" / "results"
    (out / "train_throughput.json").write_text(json.dumps(results, indent=2))
    line = (f"- {results['date']} ({results['machine']}; `python bench/train_throughput.py --users {args.users} "
            f"--batch {args.batch} --old {args.old}`), one stage-2 epoch on the same {args.users} users: "
            f"old mix {results['old']['useful_tokens_per_s']} useful tokens/s ({results['old']['examples_per_s']} "
            f"examples/s); this tree in fp32 {results['new_fp32']['useful_tokens_per_s']} useful tokens/s "
            f"({results['useful_tokens_ratio_fp32']}x); this tree at its default precision "
            f"({results['new']['precision']}) {results['new']['useful_tokens_per_s']} useful tokens/s "
            f"({results['new']['examples_per_s']} examples/s): **{results['useful_tokens_ratio']}x** useful tokens/s, "
            f"{results['examples_ratio']}x examples/s\n")
    with (out / "train_throughput.md").open("a") as f:
        f.write(line)
    print(line)


if __name__ == "__main__":
    from lakerec import logs
    logs.configure()
    main()
