"""Training results: rows of the `model_metrics` Delta table, a markdown report and a PNG plot.

The table is long-format (one row per model, seed, split, task family, template and metric), so a
new metric or model is a new row, never a schema change. A run replaces its own rows (by run_id)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from lakerec.tables import replace_slice

MODEL_METRICS_COLUMNS_DOC = {
    "run_id": "the training run (joins lakerec.runs)",
    "run_date": "logical date of the training run",
    "model_version": "registry version the run produced (the best seed's model)",
    "profile": "training profile (quick or full)",
    "dataset": "warehouse interactions table the split was built from",
    "model": "most_popular, als, sasrec (one SASRec: the ID model's first member), id_model (the ID model: the "
             "mean of the profile's id_members SASRecs trained from different seeds; with 1 member the same as "
             "sasrec), text_view (SASRec over the LM "
             "backbone's item text features), id_model+text_view (the ID model + text_weight * text view: the "
             "hybrid's ID side), lm_text (stage-1 LM alone), lm_unified (stage-2 LM alone), hybrid (the ID side + "
             "lm_weight * stage-2 LM: what is served)",
    "seed": "training seed (null for deterministic baselines)",
    "split": "test or valid (leave-one-out)",
    "family": "ranking (full ranking over unseen items); ranking_head / ranking_tail / ranking_cold (the same, "
              "users whose target is a head item: top 20% by training interactions / the rest / <= 5 training "
              "interactions); direct (20 candidates by candidate scoring: the model's own score over the 20); "
              "direct_generated (20 candidates by free generation, LLaRA's validity rule); rating; explanation; "
              "mix (the hybrid's lm_weight and text_weight)",
    "template": "trained: a prompt template used in training; heldout: never trained on (zero-shot)",
    "metric": "hr@k, ndcg@k, mrr, coverage@10 (share of the catalogue in at least one user's top 10), valid_ratio, hit_ratio@1, hit_ratio@1_valid, rmse, mae, unigram_f1, lm_weight, text_weight, lm_confidence, text_confidence (share of bootstrap resamples in which the out-of-fold mix beat the mix without the term), "
              "users (how many users the row's metrics are computed on)",
    "value": "metric value",
    "recorded_at": "when the row was written (UTC)",
}
MODEL_METRICS_SCHEMA = ("run_id string, run_date date, model_version string, profile string, dataset string, "
                        "model string, seed int, split string, family string, template string, metric string, "
                        "value double, recorded_at timestamp")

HEADLINE = ["most_popular", "als", "sasrec", "id_model", "lm_text", "hybrid"]
HEADLINE_ALL = ["most_popular", "als", "sasrec", "id_model", "text_view", "id_model+text_view", "lm_text", "lm_unified",
                "hybrid"]
TRAINED_MODELS = HEADLINE_ALL[2:]          # the rows with a validation score (model selection)
RANKING_METRICS = ["hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr", "coverage@10"]


def write_model_metrics(spark, table: str, rows: list[dict], *, run_id: str, run_date: dt.date, version: str,
                        profile: str, dataset: str) -> int:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    records = [(run_id, run_date, version, profile, dataset, r["model"], r["seed"], r["split"], r["family"],
                r["template"], r["metric"], r["value"], now) for r in rows]
    frame = spark.createDataFrame(records, MODEL_METRICS_SCHEMA)
    replace_slice(frame, table, {"run_id": run_id}, [], MODEL_METRICS_COLUMNS_DOC)
    return len(records)


def _stats(rows, model, family, metric, template="trained", split="test"):
    values = [r["value"] for r in rows if r["model"] == model and r["family"] == family and r["metric"] == metric
              and r["template"] == template and r["split"] == split]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values)), len(values)


def _cell(stat) -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{mean:.4f}" if n == 1 else f"{mean:.4f} ± {std:.4f}"


def _users(rows, model, family, template="trained", split="test") -> str:
    stat = _stats(rows, model, family, "users", template, split)
    return "–" if stat is None else str(int(stat[0]))


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# LakeRec training report — {meta['version']} ({meta['profile']} profile)", "",
             f"Run {meta['run_id']} for {meta['run_date']}, {meta['n_users']} users, {meta['n_items']} items, "
             f"dataset `{meta['dataset']}`, device {meta['device']}. Leave-one-out, full ranking over every item "
             "the user has not interacted with. Mean ± std over seeds where a model has several; the users "
             "column says how many users each row is computed on.", "",
             f"**Served:** {meta.get('serving_message', '')}", "",
             "## Full ranking (test)", "",
             "| model | seeds | users | " + " | ".join(RANKING_METRICS) + " |",
             "|---|---|---|" + "---|" * len(RANKING_METRICS)]
    for model in HEADLINE_ALL:
        stats = [_stats(rows, model, "ranking", m) for m in RANKING_METRICS]
        if all(s is None for s in stats):
            continue
        seeds = max((s[2] for s in stats if s), default=0)
        lines.append(f"| {model} | {seeds} | {_users(rows, model, 'ranking')} | "
                     + " | ".join(_cell(s) for s in stats) + " |")
    for key, baseline, what in (("paired", "SASRec", ""),
                                ("paired_id_model", "ID model", ": what the text view and the LM add to the seed "
                                                                "ensemble")):
        if not meta.get(key):
            continue
        lines += ["", f"## Hybrid vs {baseline}, paired (same users, same seed){what}", "",
                  f"| seed | users | hybrid NDCG@10 | {baseline} NDCG@10 | difference | 95% CI (paired bootstrap) | "
                  "ratio |", "|---|---|---|---|---|---|---|"]
        for seed, p in meta[key].items():
            lines.append(f"| {seed} | {p['users']} | {p['mean_a']:.4f} | {p['mean_b']:.4f} | {p['diff']:+.4f} | "
                         f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}] | "
                         + ("–" if p["ratio"] is None else f"{p['ratio']:.3f}") + " |")
    lines += ["", "## NDCG@10 by target popularity (test)", "",
              "head: the 20% most interacted items in training; tail: the rest; cold: <= 5 training interactions.", "",
              "| model | head | tail | cold |", "|---|---|---|---|"]
    for model in HEADLINE_ALL:
        cells = [f"{_cell(_stats(rows, model, f'ranking_{g}', 'ndcg@10'))} ({_users(rows, model, f'ranking_{g}')} users)"
                 for g in ("head", "tail", "cold")]
        if _stats(rows, model, "ranking_head", "ndcg@10") is not None:
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "## 20 candidates (LLaRA / RSLLM protocol, test)", "",
              "Candidate scoring: the model's own score over the 20 candidates picks the answer (valid by "
              "construction). Free generation: the LM writes an answer, valid when exactly one candidate title "
              "appears in it; HR@1 over all users and, as LLaRA reports it, over valid answers only. Same "
              "candidate lists for every row.", "",
              "| model | how | template | users | hit_ratio@1 | valid_ratio | hit_ratio@1 over valid |",
              "|---|---|---|---|---|---|---|"]
    for model in HEADLINE_ALL:
        for family, how in (("direct", "candidate scoring"), ("direct_generated", "free generation")):
            for template in ("trained", "heldout"):
                stat = _stats(rows, model, family, "hit_ratio@1", template)
                if stat is None:
                    continue
                lines.append(f"| {model} | {how} | {template} | {_users(rows, model, family, template)} | "
                             f"{_cell(stat)} | {_cell(_stats(rows, model, family, 'valid_ratio', template))} | "
                             f"{_cell(_stats(rows, model, family, 'hit_ratio@1_valid', template))} |")
    lines += ["", "## Rating prediction and explanations (the hybrid's LM, generation)", "",
              "| template | users | RMSE | MAE | explanation unigram F1 |", "|---|---|---|---|---|"]
    for template in ("trained", "heldout"):
        if _stats(rows, "hybrid", "rating", "rmse", template) is None:
            continue
        lines.append(f"| {template} | {_users(rows, 'hybrid', 'rating', template)} | "
                     f"{_cell(_stats(rows, 'hybrid', 'rating', 'rmse', template))} | "
                     f"{_cell(_stats(rows, 'hybrid', 'rating', 'mae', template))} | "
                     f"{_cell(_stats(rows, 'hybrid', 'explanation', 'unigram_f1', template))} |")
    lines += ["", "## Validation NDCG@10 (model selection) and the mix", ""]
    for model in TRAINED_MODELS:
        stat = _stats(rows, model, "ranking", "ndcg@10", split="valid")
        if stat:
            lines.append(f"- {model}: {_cell(stat)} ({_users(rows, model, 'ranking', split='valid')} users)")
    for name, confidence in (("text_weight", "text_confidence"), ("lm_weight", "lm_confidence")):
        weights = [r["value"] for r in rows if r["model"] == "hybrid" and r["family"] == "mix" and r["metric"] == name]
        sure = [r["value"] for r in rows if r["model"] == "hybrid" and r["family"] == "mix"
                and r["metric"] == confidence]
        if weights:
            lines.append(f"- {name} chosen per seed: {', '.join(f'{w:g}' for w in weights)}"
                         + (f" (out-of-fold mix better than without it in {', '.join(f'{c:.0%}' for c in sure)} "
                            "of paired bootstrap resamples)" if len(sure) == len(weights) else ""))
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    lines += ["", "![NDCG@10 and HR@10 by model](report.png)", ""]
    return "\n".join(lines)


QUALITY_MODELS = HEADLINE_ALL


def quality_summary(rows: list[dict], meta: dict) -> dict:
    """Per-model, per-seed test numbers (bench/results/quality_ml100k.json's `models`)."""
    def values(model, family, metric):
        return [r["value"] for r in rows if r["model"] == model and r["family"] == family and r["metric"] == metric
                and r["template"] == "trained" and r["split"] == "test"]
    models = {}
    for model in QUALITY_MODELS:
        entry = {"ndcg@10": values(model, "ranking", "ndcg@10"), "hr@10": values(model, "ranking", "hr@10"),
                 "tail_ndcg@10": values(model, "ranking_tail", "ndcg@10"),
                 "cold_ndcg@10": values(model, "ranking_cold", "ndcg@10"),
                 "cand20_hr@1": values(model, "direct", "hit_ratio@1"),
                 "cand20_valid": values(model, "direct", "valid_ratio"),
                 "coverage@10": values(model, "ranking", "coverage@10"),
                 "users": values(model, "ranking", "users")}
        if model == "hybrid":
            entry["cand20_generated_hr@1"] = values(model, "direct_generated", "hit_ratio@1")
            entry["cand20_generated_valid"] = values(model, "direct_generated", "valid_ratio")
            for name in ("lm_weight", "text_weight", "lm_confidence", "text_confidence"):
                entry[name] = [r["value"] for r in rows if r["model"] == model and r["family"] == "mix"
                               and r["metric"] == name]
        if entry["ndcg@10"]:
            models[model] = entry
    return {"models": models, "paired_hybrid_vs_sasrec": meta.get("paired", {}),
            "paired_hybrid_vs_id_model": meta.get("paired_id_model", {})}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = [m for m in HEADLINE if _stats(rows, m, "ranking", "ndcg@10")]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.38
    x = np.arange(len(models))
    for k, metric in enumerate(("ndcg@10", "hr@10")):
        stats = [_stats(rows, m, "ranking", metric) for m in models]
        ax.bar(x + (k - 0.5) * width, [s[0] for s in stats], width, yerr=[s[1] for s in stats], capsize=3,
               label=metric)
    ax.set_xticks(x, models)
    ax.set_ylabel("test, leave-one-out, full ranking")
    ax.legend()
    ax.set_title("LakeRec models on the same split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory: Path, rows: list[dict], meta: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    plot(rows, directory / "report.png")
    (directory / "report.md").write_text(markdown(rows, meta))
    (directory / "quality.json").write_text(json.dumps(quality_summary(rows, meta), indent=2))
    return directory / "report.md"
