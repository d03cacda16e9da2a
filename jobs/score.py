"""`lakerec score --run-date D [--model VERSION|champion] [--variant NAME] [--holdout]`: score the
prompts of D with an exported bundle on the executors and replace the (D, variant) slice of
`recs.user_recommendations` (or, --holdout, of `recs.holdout_recommendations` from the holdout
prompts, for offline evaluation). See lakerec/scoring/ and docs/tables.md."""
from __future__ import annotations

from lakerec.ab import variant_users
from lakerec.progress import spark_progress
from lakerec.runs import recorded_run
from lakerec.scoring.job import score


def run(spark, conf, run_date, model=None, variant=None, holdout=False, users=None):
    """variant: an A/B variant of conf ab.variants; scores only its assigned users."""
    with recorded_run(spark, conf, "score", run_date) as run:
        if variant and users is None:
            users = variant_users(spark, conf, variant)
        with spark_progress(spark, "score"):
            score(spark, conf, run, model=model, variant=variant, holdout=holdout, users=users)
        m = run.metrics
        print(f"[score] {m['users']} users with {m['model_version']} ({m['precision']}, {', '.join(m['providers']) or '-'}) "
              f"-> {m['output_table']} variant {m['variant']}: {run.rows_out} rows, {run.rows_quarantined} users "
              f"quarantined; {m['model_loads']} model loads in {m['workers']} Python workers; "
              f"{m['users_per_s']} users/s")
        return run
