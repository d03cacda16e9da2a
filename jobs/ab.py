"""`lakerec ab assign`: users -> variants (recs.ab_assignments). `lakerec ab evaluate --run-date D`:
each variant's model scores its users' holdout prompts of D (`lakerec textualize --holdout` first);
NDCG@K and HR@K with bootstrap confidence intervals, and the difference from the first variant, go
to recs.ab_metrics. See lakerec/ab.py."""
from __future__ import annotations

from jobs import score
from lakerec import ab
from lakerec.runs import recorded_run


def assign(spark, conf, run_date):
    with recorded_run(spark, conf, "ab:assign", run_date) as run:
        counts = ab.assign(spark, conf, run)
        print(f"[ab] experiment {ab.experiment(conf)}: " + ", ".join(f"{v} {n} users" for v, n in sorted(counts.items())))
        return run


def evaluate(spark, conf, run_date):
    k = int(conf.get("ab.metrics_k"))
    eval_conf = conf.with_overrides({"score.top_k": k, "score.explain_top_k": 0})
    with recorded_run(spark, conf, "ab:evaluate", run_date) as run:
        per_variant, models = {}, {}
        for variant in ab.variants(conf):
            scored = score.run(spark, eval_conf, run_date, variant=variant.name, holdout=True)
            models[variant.name] = scored.metrics["model_version"]
            per_variant[variant.name] = ab.per_user_metrics(spark, conf, run_date, variant.name, k)
        rows = ab.metric_rows(per_variant, models, k, int(conf.get("ab.bootstrap")),
                              float(conf.get("ab.confidence")), int(conf.get("ab.seed")))
        ab.write_metrics(spark, conf, run, rows)
        run.rows_out = len(rows)
        run.metrics.update(experiment=ab.experiment(conf), users={v: len(m) for v, m in per_variant.items()})
        print(f"\n[ab] experiment {ab.experiment(conf)} on the {run_date} holdout "
              f"({rows[0]['confidence']:.0%} bootstrap intervals, {rows[0]['n_bootstrap']} resamples):")
        for r in rows:
            print(f"  {r['variant']:>12} {r['model_version']:>6} {r['metric']:>8} {r['value']:.4f} "
                  f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]  n={r['users']}  vs {r['baseline']}: {r['diff']:+.4f} "
                  f"[{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]")
        return run
