"""Whether the sequence encoder should be quantized: for a bundle serving the ID side alone (the
champion of 2026-11-24 onward) it is all of scoring's model compute (int8 bundles quantize it since
2026-12-06, on this bench's evidence; model_export/precision.py). Side by side in one process, one thread (as a Spark task
runs it), on the MovieLens users' real sequences (the prompts table's newest run_date): fp32 against
ONNX Runtime's int8 quantization of its MatMuls: dynamic (activations quantized per call; ORT's
U8S8 kernels, VNNI where the CPU has it), per channel and per tensor, and static (QDQ, activation
ranges calibrated on the first 512 users' scoring-time sequences, not on the test ones) -- ms per batch
of 64, max |difference| of the ID-side states, top-10 agreement with fp32 (history excluded), and
test NDCG@10 / HR@10 on the training job's protocol (leave-one-out, full ranking, the model's own
lineage run date: each user's history up to the test item, the test item ranked against every item
not seen before it).

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
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

import results_io   # bench/, first on sys.path when run as a script
from bundles_side_by_side import prompts_frame
from lakerec import training
from lakerec.config import load_conf
from lakerec.eval.metrics import ranking_metrics, target_rank
from lakerec.eval.protocol import seen_before
from lakerec.eval.split import TEST
from lakerec.registry import Registry
from lakerec.scoring.bundle_choice import bundle_for
from model_export import precision
from rec_udf import runtime
from rec_udf.recommender import Recommender


def markdown(r: dict, command: str) -> str:
    rows = [f"| {name} | {v['ms_per_64']} | {v['speed_vs_fp32']}x | {v['max_abs_diff']:.2e} | {v['top10_identical']:.1%} | "
            f"{v['test']['ndcg@10']:.4f} | {v['test']['ndcg@10'] / r['variants']['fp32']['test']['ndcg@10'] - 1:+.2%} | "
            f"{v['test']['hr@10']:.4f} |" for name, v in r["variants"].items()]
    return (f"\n## {r['date']} -- {r['model_version']}, {r['users']} users, {r['machine']}, one thread\n\n`{command}`\n\n"
            "| sequence encoder | ms per 64 users | speed vs fp32 | max abs diff (ID-side states) | top-10 identical | "
            f"test NDCG@10 ({r['test_users']} users) | vs fp32 | test HR@10 |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
            f"\nQuality bar (#16): int8 becomes the CPU default only if its test NDCG@10 is within 1% of fp32's.\n")


def test_split(conf, version: str, bundle_item_ids: np.ndarray):
    """(users, their item-id sequences up to the test item, split) on the training job's protocol, at the
    run date the model was trained on."""
    from lakerec.sources.schema import read_sources
    from lakerec.spark import build_session
    info = Registry.from_conf(conf).describe(version)
    spark = build_session(conf)
    good = {role: source.df for role, source in read_sources(spark, conf).items()}
    split, text, _ = training.prepare_data(spark, conf, good, dt.date.fromisoformat(info["lineage"]["run_date"]))
    if not np.array_equal(split.item_ids, bundle_item_ids):
        raise SystemExit(f"{version}: the warehouse's catalogue differs from the bundle's; cannot evaluate it here")
    users = sorted(split.test)
    sequences = [[int(split.item_ids[i]) for i in text.sequences[u][:text.prefix_length(u, TEST)]] for u in users]
    return users, sequences, split


def test_metrics(recommender: Recommender, states: np.ndarray, users, split) -> dict:
    """NDCG@10 and HR@10 of the test item, ranked by [ID-side state ; 0] against the item matrix."""
    lm = np.zeros((len(states), int(recommender.lm_dim)), dtype=np.float32)
    scores = np.concatenate([states, lm], axis=1) @ recommender.bundle.item_matrix.T
    ranks = [target_rank(scores[row], split.test[u], seen_before(split, u, TEST)) for row, u in enumerate(users)]
    return {k: round(v, 6) for k, v in ranking_metrics(np.array(ranks)).items() if k in ("ndcg@10", "hr@10")}


class Calibration(CalibrationDataReader):
    """Static quantization's calibration batches: ID sequences, 64 users a batch."""

    def __init__(self, ids: np.ndarray):
        self.batches = iter([{"id_sequence": ids[b:b + 64]} for b in range(0, len(ids), 64)])

    def get_next(self):
        return next(self.batches, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="champion")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    conf = load_conf(None, [])
    # the fp32 bundle: the int8 one's sequence encoder is already quantized
    version, bundle_dir, _ = bundle_for(conf.with_overrides({"score.precision": "fp32"}), args.model)
    recommender = Recommender.open(bundle_dir, prefer="cpu", threads=1)
    if recommender.reads_prompts:
        raise SystemExit(f"{version} serves an LM term: its ranking depends on the user encoder too, which this "
                         "bench does not quantize (bench/export_precision.py judges whole bundles)")
    frame = prompts_frame(10**9)                      # every user of the newest run_date
    frame = frame[frame.sequence_item_ids.notna() & frame.seen_item_ids.notna()]
    sequences = [list(map(int, s)) for s in frame["sequence_item_ids"]]
    seen = [list(map(int, s)) for s in frame["seen_item_ids"]]
    ids = recommender.id_sequences(sequences)
    users, test_sequences, split = test_split(conf, version, np.load(bundle_dir / recommender.bundle.manifest.items.ids))
    test_ids = recommender.id_sequences(test_sequences)
    source = bundle_dir / recommender.bundle.manifest.graphs.sequence_encoder.file
    with tempfile.TemporaryDirectory() as work:
        paths = {"fp32": source}
        paths["int8 per channel"] = Path(work) / "sequence_encoder.onnx"      # what int8 bundles ship
        precision.convert(source, paths["int8 per channel"], "int8")
        paths["int8 per tensor"] = Path(work) / "per_tensor.onnx"
        quantize_dynamic(str(source), str(paths["int8 per tensor"]), weight_type=QuantType.QInt8, per_channel=False,
                         op_types_to_quantize=["MatMul"])
        paths["int8 static per channel"] = Path(work) / "static.onnx"
        quantize_static(str(source), str(paths["int8 static per channel"]), Calibration(ids[:512]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
        one_thread = runtime.choose_device("cpu", 1)   # as a Spark task runs it (scoring's own session options)
        sessions = {name: runtime.open_session(path, one_thread) for name, path in paths.items()}

        def run_states(session, batch_ids):
            return np.concatenate([session.run(None, {"id_sequence": batch_ids[b:b + 64]})[1]
                                   for b in range(0, len(batch_ids), 64)])
        states = {name: run_states(s, ids) for name, s in sessions.items()}
        test = {name: test_metrics(recommender, run_states(s, test_ids), users, split) for name, s in sessions.items()}
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
                          "top10_identical": float(np.mean([set(a) == set(b) for a, b in zip(top, reference)])),
                          "test": test[name]}
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "model_version": version, "users": len(ids), "test_users": len(users), "variants": variants}
    print(results_io.save("sequence_encoder_int8", r, markdown, lambda *_: None))


if __name__ == "__main__":
    main()
