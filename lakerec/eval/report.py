"""Training results: rows of the `model_metrics` Delta table, a markdown report and a PNG plot.

The table is long-format (one row per model, seed, split, task family, template and metric), so a
new metric or model is a new row, never a schema change. A run replaces its own rows (by run_id)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from lakerec.tables import replace_slice

MODEL_METRICS_COLUMNS_DOC = {
    "run_id": "the training run (joins lakerec.runs)",
    "run_date": "logical date of the training run",
    "model_version": "registry version the run produced (the best seed's model)",
    "profile": "training profile (quick or full)",
    "dataset": "warehouse interactions table the split was built from",
    "model": "most_popular, als, sasrec, lm_text (stage 1), hybrid (stage 2)",
    "seed": "training seed (null for deterministic baselines)",
    "split": "test or valid (leave-one-out)",
    "family": "ranking (full ranking over unseen items), direct (20 candidates), rating, explanation",
    "template": "trained: a prompt template used in training; heldout: never trained on (zero-shot)",
    "metric": "hr@k, ndcg@k, mrr, valid_ratio, hit_ratio@1, rmse, mae, unigram_f1, users",
    "value": "metric value",
    "recorded_at": "when the row was written (UTC)",
}
MODEL_METRICS_SCHEMA = ("run_id string, run_date date, model_version string, profile string, dataset string, "
                        "model string, seed int, split string, family string, template string, metric string, "
                        "value double, recorded_at timestamp")

HEADLINE = ["most_popular", "als", "sasrec", "lm_text", "hybrid"]
RANKING_METRICS = ["hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"]


def write_model_metrics(spark, table: str, rows: list[dict], *, run_id: str, run_date: dt.date, version: str,
                        profile: str, dataset: str) -> int:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    records = [(run_id, run_date, version, profile, dataset, r["model"], r["seed"], r["split"], r["family"],
                r["template"], r["metric"], r["value"], now) for r in rows]
    frame = spark.createDataFrame(records, MODEL_METRICS_SCHEMA)
    replace_slice(frame, table, f"run_id = '{run_id}'", [], MODEL_METRICS_COLUMNS_DOC)
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


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# LakeRec training report — {meta['version']} ({meta['profile']} profile)", "",
             f"Run {meta['run_id']} for {meta['run_date']}, {meta['n_users']} users evaluated, "
             f"{meta['n_items']} items, dataset `{meta['dataset']}`, device {meta['device']}. "
             "Leave-one-out, test split, full ranking over every item the user has not interacted with. "
             "Mean ± std over seeds where a model has several.", "",
             "## Full ranking (test)", "",
             "| model | seeds | " + " | ".join(RANKING_METRICS) + " |",
             "|---|---|" + "---|" * len(RANKING_METRICS)]
    for model in HEADLINE:
        stats = [_stats(rows, model, "ranking", m) for m in RANKING_METRICS]
        if all(s is None for s in stats):
            continue
        seeds = max((s[2] for s in stats if s), default=0)
        lines.append(f"| {model} | {seeds} | " + " | ".join(_cell(s) for s in stats) + " |")
    lines += ["", "## 20 candidates (LLaRA / RSLLM protocol, test)", "",
              "LM models answer by free generation (ValidRatio = answers naming a candidate); score-based "
              "models pick their top-scored candidate (always valid). Same candidate lists for all.", "",
              "| model | template | hit_ratio@1 | valid_ratio | hit_ratio@1 over valid |", "|---|---|---|---|---|"]
    for model in HEADLINE:
        for template in ("trained", "heldout"):
            stat = _stats(rows, model, "direct", "hit_ratio@1", template)
            if stat is None:
                continue
            lines.append(f"| {model} | {template} | {_cell(stat)} | "
                         f"{_cell(_stats(rows, model, 'direct', 'valid_ratio', template))} | "
                         f"{_cell(_stats(rows, model, 'direct', 'hit_ratio@1_valid', template))} |")
    lines += ["", "## Rating prediction, explanations, and held-out templates (zero-shot)", "",
              "| model | template | ndcg@10 (ranking) | RMSE | MAE | explanation unigram F1 |", "|---|---|---|---|---|---|"]
    for model in ("lm_text", "hybrid"):
        for template in ("trained", "heldout"):
            if _stats(rows, model, "rating", "rmse", template) is None:
                continue
            lines.append(f"| {model} | {template} | {_cell(_stats(rows, model, 'ranking', 'ndcg@10', template))} | "
                         f"{_cell(_stats(rows, model, 'rating', 'rmse', template))} | "
                         f"{_cell(_stats(rows, model, 'rating', 'mae', template))} | "
                         f"{_cell(_stats(rows, model, 'explanation', 'unigram_f1', template))} |")
    lines += ["", "## Validation NDCG@10 (model selection)", ""]
    for model in ("sasrec", "lm_text", "hybrid"):
        stat = _stats(rows, model, "ranking", "ndcg@10", split="valid")
        if stat:
            lines.append(f"- {model}: {_cell(stat)}")
    if meta.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in meta["notes"]]
    lines += ["", "![NDCG@10 and HR@10 by model](report.png)", ""]
    return "\n".join(lines)


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
    return directory / "report.md"
