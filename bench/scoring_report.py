"""bench/scoring.py's results: users/s per approach, the ratios against the issue's goals, and the
record as markdown (bench/results/scoring.md) and a bar plot."""
from __future__ import annotations

from pathlib import Path


def rates(result: dict) -> dict:
    seconds = result["seconds"]
    return {**result, "seconds": round(seconds, 2), "users_per_s": round(result["users"] / seconds, 2),
            **({"prompt_tokens_per_s": round(result["tokens"] / seconds, 1)} if "tokens" in result else {})}


def ratios(approaches: dict) -> dict:
    """The issue's goals: lakerec / best bare (>= 0.9), / first_attempt (>= 5), / predict_batch (>= 1.5)."""
    speed = {name: v["users_per_s"] for name, v in approaches.items()}
    if "lakerec" not in speed:
        return {}
    out = {}
    bare = [v for name, v in speed.items() if name.startswith("bare")]
    if bare:
        out["lakerec_vs_best_bare"] = round(speed["lakerec"] / max(bare), 3)
    for name in ("first_attempt", "predict_batch"):
        if name in speed:
            out[f"lakerec_vs_{name}"] = round(speed["lakerec"] / speed[name], 2)
    return out


def markdown(r: dict, command: str) -> str:
    a = r["approaches"]
    lines = [f"\n## {r['date']} -- {r['users']} users, model {r['model_version']} ({r['precision']}), "
             f"batch {r['batch_size']}, explanations per user {r['explain_top_k']}, {r['machine']}\n",
             f"`{command}`\n", *([f"Overrides for every approach: {', '.join(r['overrides'])}.\n"] if r.get("overrides") else []),
             "| approach | users/s | prompt tokens/s | seconds | vs lakerec |", "|---|---|---|---|---|"]
    base = a.get("lakerec", {}).get("users_per_s")
    for name, v in a.items():
        ratio = f"{base / v['users_per_s']:.2f}x slower" if base and name != "lakerec" else "-"
        if name.startswith("bare") and base:
            ratio = f"lakerec at {base / v['users_per_s']:.0%} of this"
        lines.append(f"| {name} | {v['users_per_s']} | {v.get('prompt_tokens_per_s', '-')} | {v['seconds']} | {ratio} |")
    if r.get("warmup_users"):
        lines.append(f"\nEach Spark approach first ran untimed on {r['warmup_users']:,} other users (workers started, models "
                     "cached where the approach caches them; the bare model is loaded before its clock too).")
    if r.get("slow_users"):
        lines.append(f"\nfirst_attempt and predict_batch ran on the first {r['slow_users']:,} of these users (rates are "
                     "per user, so they compare; the others ran on all).")
    if r["ratios"]:
        lines.append("\nRatios (goal): " + ", ".join(f"{k} {v}" for k, v in r["ratios"].items())
                     + " (goals: >= 0.9, >= 5, >= 1.5)")
    if r.get("ceiling"):
        c = r["ceiling"]
        lines.append(f"\nArithmetic of the full pass (the exported graphs skip the last layer's per-token work, ~1/8 of "
                     f"it, so ONNX rates are overstated by that): {c['gflop_per_user']} GFLOP per user "
                     f"({c['mean_prompt_tokens']} prompt tokens); this "
                     f"machine's fp32 rate on one 2048x2048 matmul, all cores: {c['gemm_gflops_all_cores']} GFLOP/s. "
                     + ", ".join(f"{n} {v['gflops']} GFLOP/s ({v['share_of_gemm']:.0%})" for n, v in c["approaches"].items()))
        if "five_x_first_attempt_needs" in c:
            need = c["five_x_first_attempt_needs"]
            lines.append(f"5x the first attempt would need {need['gflops']} GFLOP/s, {need['share_of_gemm']:.0%} of that rate.")
    if "lakerec" in a:
        lines.append(f"\nLakeRec write of the recommendation rows to Delta: {a['lakerec']['write_seconds']:.1f} s; "
                     f"model loads {a['lakerec']['model_loads']} ({a['lakerec']['loads_per_worker']}); "
                     f"scoring tasks {a['lakerec'].get('partitions', '-')}.")
    if r.get("batch_sweep"):
        lines.append(f"\nEncoder + top-k users/s by batch size, one thread ({r['sweep_users']} users): "
                     + ", ".join(f"{b}: {u}" for b, u in r["batch_sweep"].items()))
    if r.get("kv_cache"):
        kv = r["kv_cache"]
        lines.append(f"\nExplanations, {r['kv_users']} users x {r['max_new_tokens']} greedy steps: "
                     f"{kv['cached_steps_per_s']} tokens/s with the KV cache, {kv['uncached_steps_per_s']} without "
                     f"({kv['cached_steps_per_s'] / kv['uncached_steps_per_s']:.1f}x); identical text: {kv['same_text']}")
    lines.append(f"\nPeak RSS: driver {r['rss']['driver_mib']:.0f} MiB; Spark processes (JVM, Python workers) after the LakeRec stage "
                 f"{r['rss'].get('lakerec_workers_mib')}; after all stages {r['rss']['workers_end_mib']}")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(r["approaches"])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(names, [r["approaches"][n]["users_per_s"] for n in names])
    ax.set_xlabel("users/s (higher is better)")
    ax.set_title(f"{r['users']} users, {r['machine']}, {r['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
