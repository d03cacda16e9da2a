"""`lakerec train [--profile quick|full] [--from champion|VERSION]`: train the ID model and the
recommendation LM (two stages), evaluate them beside the baselines on one leave-one-out split,
write `model_metrics` and a report, register the model, promote it if it beats the champion."""
from __future__ import annotations

from lakerec.eval.report import write_model_metrics, write_report
from lakerec.model.device import device
from lakerec.registry import Registry, training_conf_hash
from lakerec.profiles import load_profile
from lakerec.sources.schema import read_sources
from lakerec.progress import spark_progress
from lakerec.runs import recorded_run
from lakerec.training import run_training
from lakerec.validate import validated_sources


def run(spark, conf, run_date, profile_name: str | None = None, warm_from: str | None = None):
    profile = load_profile(conf, profile_name)
    registry = Registry.from_conf(conf)
    if warm_from:
        registry.resolve(warm_from)          # fail before any work when the version does not exist
    with recorded_run(spark, conf, "train", run_date) as run:
        with spark_progress(spark, "train"), validated_sources(spark, conf, run, "train") as (checked, versions):
            results = run_training(spark, conf, checked.good, versions, run, profile, warm_from)
        dataset = conf.require("source.interactions.table")
        run.rows_out = write_model_metrics(spark, conf.require("tables.model_metrics"), results["rows"],
                                           run_id=run.run_id, run_date=run_date, version=results["version"],
                                           profile=profile.name, dataset=dataset)
        seeds = results["seeds"]
        meta = {"version": results["version"], "profile": profile.name, "run_id": run.run_id,
                "run_date": run_date.isoformat(), "n_users": results["n_users"], "n_items": results["n_items"],
                "dataset": dataset, "device": device(), "serving_message": results["serving_message"],
                "paired": results["paired"], "paired_id_model": results["paired_id_model"],
                "notes": [f"LM training, seed {s}, {v['precision']}: {v['examples_per_s']:.2f} examples/s, "
                          f"{v['useful_tokens_per_s']:.0f} useful tokens/s, {v['padding_share']:.0%} padding; "
                          f"SASRec {v['sasrec_examples_per_s']:.0f} sequences/s" for s, v in seeds.items()]
                + [f"explanation sample (MiniLM generator): {next(iter(seeds.values()))['explanation_example']!r}",
                   results["message"]]}
        report = write_report(registry.resolve(results["version"]) / "report", results["rows"], meta)
        run.metrics.update(model_version=results["version"], promoted=results["promoted"],
                           valid_ndcg_at_10=round(results["valid_ndcg"], 4), report=str(report),
                           lm_weight=results["lm_weight"], serving=results["serving"],
                           lm_examples_per_s={s: round(v["examples_per_s"], 2) for s, v in results["seeds"].items()})
        print(f"model {results['version']}: {results['message']}; {results['serving_message']}; report: {report}")
        return run


def run_unless_current(spark, conf, run_date) -> str:
    """The demo's training step: skipped when the champion was trained for this run date on the same
    table versions with the same settings (a second `make demo` does not repeat minutes of identical
    training). Returns the path of the training report (this run's, or the champion's when skipped)."""
    profile = load_profile(conf, None)
    registry = Registry.from_conf(conf)
    versions = {s.table: s.version for s in read_sources(spark, conf).values()}
    settings = training_conf_hash(profile.settings(), conf.get("textualize"))
    current = registry.champion_trained_on(run_date.isoformat(), versions, settings)
    if current:
        print(f"lakerec train skipped: champion {current} was trained for {run_date} on these table versions "
              f"with profile {profile.name} (`lakerec train` trains anyway)")
        return str(registry.resolve(current) / "report" / "report.md")
    return run(spark, conf, run_date).metrics["report"]
