"""Whether the sequence encoder should be quantized: for a bundle serving the ID side alone (the
champion of 2026-11-24 onward) it is all of scoring's model compute, and every precision variant
keeps it fp32 (model_export/precision.py). Side by side in one process, one thread (as a Spark task
runs it), on the MovieLens users' real sequences (the prompts table's newest run_date): fp32 against
ONNX Runtime's dynamic int8 quantization of its MatMuls, per channel and per tensor -- ms per batch
of 64, max |difference| of the ID-side states, and top-10 agreement with fp32 (history excluded).

    python bench/sequence_encoder_int8.py [--model champion] [--repeats 30]
Appends to bench/results/sequence_encoder_int8.md and writes its JSON beside it."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic

import results_io   # bench/, first on sys.path when run as a script
from bundles_side_by_side import prompts_frame
from lakerec.config import load_conf
from lakerec.scoring.bundle_choice import bundle_for
from rec_udf import runtime
from rec_udf.recommender import Recommender


def markdown(r: dict, command: str) -> str:
    rows = [f"| {name} | {v['ms_per_64']} | {v['speed_vs_fp32']}x | {v['max_abs_diff']:.2e} | {v['top10_identical']:.1%} |"
            for name, v in r["variants"].items()]
    return (f"\n## {r['date']} -- {r['model_version']}, {r['users']} users, {r['machine']}, one thread\n\n`{command}`\n\n"
            "| sequence encoder | ms per 64 users | speed vs fp32 | max abs diff (ID-side states) | top-10 identical |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="champion")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    conf = load_conf(None, [])
    version, bundle_dir, _ = bundle_for(conf, args.model)
    recommender = Recommender.open(bundle_dir, prefer="cpu", threads=1)
    if recommender.reads_prompts:
        raise SystemExit(f"{version} serves an LM term: its ranking depends on the user encoder too, which this "
                         "bench does not quantize (bench/export_precision.py judges whole bundles)")
    frame = prompts_frame(10**9)                      # every user of the newest run_date
    frame = frame[frame.sequence_item_ids.notna() & frame.seen_item_ids.notna()]
    sequences = [list(map(int, s)) for s in frame["sequence_item_ids"]]
    seen = [list(map(int, s)) for s in frame["seen_item_ids"]]
    ids = recommender.id_sequences(sequences)
    source = bundle_dir / recommender.bundle.manifest.graphs.sequence_encoder.file
    with tempfile.TemporaryDirectory() as work:
        paths = {"fp32": source}
        for name, per_channel in (("int8 per channel", True), ("int8 per tensor", False)):
            paths[name] = Path(work) / f"{per_channel}.onnx"
            quantize_dynamic(str(source), str(paths[name]), weight_type=QuantType.QInt8, per_channel=per_channel,
                             op_types_to_quantize=["MatMul"])
        one_thread = runtime.choose_device("cpu", 1)   # as a Spark task runs it (scoring's own session options)
        sessions = {name: runtime.open_session(path, one_thread) for name, path in paths.items()}
        states = {name: np.concatenate([s.run(None, {"id_sequence": ids[b:b + 64]})[1] for b in range(0, len(ids), 64)])
                  for name, s in sessions.items()}
        ms = {name: [] for name in sessions}
        for _ in range(2):                            # alternating rounds, best of each
            for name, s in sessions.items():
                start = time.perf_counter()
                for _ in range(args.repeats):
                    s.run(None, {"id_sequence": ids[:64]})
                ms[name].append((time.perf_counter() - start) / args.repeats * 1000)
    lm = np.zeros((len(ids), int(recommender.lm_dim)), dtype=np.float32)
    reference, _ = recommender.top_k(np.concatenate([states["fp32"], lm], axis=1), 10, exclude=seen)
    variants = {}
    for name in sessions:
        top, _ = recommender.top_k(np.concatenate([states[name], lm], axis=1), 10, exclude=seen)
        variants[name] = {"ms_per_64": round(min(ms[name]), 2),
                          "speed_vs_fp32": round(min(ms["fp32"]) / min(ms[name]), 2),
                          "max_abs_diff": float(np.abs(states[name] - states["fp32"]).max()),
                          "top10_identical": float(np.mean([set(a) == set(b) for a, b in zip(top, reference)]))}
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "model_version": version, "users": len(ids), "variants": variants}
    print(results_io.save("sequence_encoder_int8", r, markdown, lambda *_: None))


if __name__ == "__main__":
    main()
