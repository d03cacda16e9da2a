"""The `lakerec` command: one subcommand per job.

Every job takes --conf (YAML; default conf/local.yaml), --set key.path=value overrides and
--run-date (default: today, UTC). Exit code 0 only on success; problems the user must fix
(missing table or column, bad configuration, corrupt file) print one clear message and exit 2.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

from lakerec import logs
from lakerec.config import load_conf
from lakerec.errors import LakeRecError
from rec_udf.errors import BundleError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", help="YAML configuration (default: conf/local.yaml)")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a configuration key, e.g. --set spark.master=local[4]")
    common.add_argument("--run-date", type=_date, default=dt.datetime.now(dt.timezone.utc).date(),
                        help="logical date of the run, YYYY-MM-DD (default: today, UTC)")
    top = argparse.ArgumentParser(prog="lakerec", description="LLM recommendation scoring in your warehouse.")
    jobs = top.add_subparsers(dest="job", required=True, metavar="<job>")

    p = jobs.add_parser("ingest", parents=[common], help="load MovieLens-100K into the source tables")
    p.add_argument("--force", action="store_true", help="rewrite even if the tables hold this dataset")
    p = jobs.add_parser("generate", parents=[common], help="write a synthetic warehouse of any size")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mean-interactions", type=float, default=50.0)
    p.add_argument("--force", action="store_true")
    jobs.add_parser("validate", parents=[common], help="check the source tables; quarantine bad rows")
    p = jobs.add_parser("textualize", parents=[common], help="write the prompts partition for --run-date")
    p.add_argument("--holdout", action="store_true",
                   help="leave-one-out prompts (last interaction held out) into tables.holdout_prompts")
    p = jobs.add_parser("score", parents=[common], help="score --run-date's prompts into recs.user_recommendations")
    p.add_argument("--model", help="registered version or 'champion' (default: the variant's or score.model)")
    p.add_argument("--variant", help="A/B variant from conf ab.variants: its model, its assigned users only")
    p.add_argument("--holdout", action="store_true",
                   help="score the holdout prompts into tables.holdout_recommendations (offline evaluation)")
    jobs.add_parser("demo", parents=[common], help="run the whole local pipeline and show results")
    p = jobs.add_parser("check", parents=[common], help="data-quality checks on --run-date's recommendations")
    p.add_argument("--variant", default="default")
    p = jobs.add_parser("stream", parents=[common], help="re-score users with new interactions into the live table")
    p.add_argument("--trigger", default="available-now",
                   help="available-now (catch up, then stop) or processing-time=<interval>, e.g. 'processing-time=1 minute'")
    p = jobs.add_parser("ab", parents=[common], help="offline A/B: assign users to variants, evaluate variants")
    p.add_argument("action", choices=["assign", "evaluate"])
    p = jobs.add_parser("train", parents=[common], help="train, evaluate and register a model")
    p.add_argument("--profile", help="training profile from conf train.profiles (default: train.profile)")
    p.add_argument("--from", dest="warm_from", metavar="VERSION",
                   help="warm-start from a registered version or 'champion' instead of starting over")
    jobs.add_parser("train-explainer", parents=[common],
                    help="LoRA self-training of the explainer LLM on its own faithful sentences")
    p = jobs.add_parser("models", parents=[common], help="registered model versions and the champion")
    p.add_argument("--json", action="store_true", help="JSON list")
    p.add_argument("--promote", metavar="VERSION", help="make VERSION the champion (a deliberate override)")
    p.add_argument("--promote-if-better", metavar="VERSION",
                   help="make VERSION (or 'latest') champion if its validation NDCG@10 beats the champion's")
    p = jobs.add_parser("export", parents=[common], help="export a model version to verified ONNX bundles")
    p.add_argument("--model", default="champion", help="registered version, 'latest' or 'champion' (default)")
    p.add_argument("--precision", help="comma-separated: fp32,fp16,int8 (default: conf export.precisions)")
    p.add_argument("--force", action="store_true", help="re-export even if a verified bundle exists")
    p = jobs.add_parser("info", parents=[common], help="warehouse, tables, locations, versions")
    p.add_argument("--json", action="store_true", help="one JSON object")
    jobs.add_parser("metastore-init", parents=[common],
                    help="create the Hive metastore schema in the shared database at spark.metastore.url (once)")
    jobs.add_parser("maintain", parents=[common],
                    help="OPTIMIZE and VACUUM LakeRec's tables; delete unused shipping archives")
    p = jobs.add_parser("submit-args", parents=[common],
                        help="the spark-submit arguments a scheduler needs to run a LakeRec job")
    p.add_argument("--json", action="store_true", help="one JSON object: application, conf, env_vars")
    p = jobs.add_parser("sql", parents=[common], help="run one SQL statement against the warehouse")
    p.add_argument("statement")
    return top


def dispatch(args, spark, conf) -> None:
    if args.job == "ingest":
        from jobs import ingest
        ingest.run(spark, conf, args.run_date, force=args.force)
    elif args.job == "generate":
        from jobs import generate
        generate.run(spark, conf, args.run_date, users=args.users, items=args.items, seed=args.seed,
                     mean_interactions=args.mean_interactions, force=args.force)
    elif args.job == "validate":
        from jobs import validate
        validate.run(spark, conf, args.run_date)
    elif args.job == "textualize":
        from jobs import textualize
        textualize.run(spark, conf, args.run_date, holdout=args.holdout)
    elif args.job == "score":
        from jobs import score
        score.run(spark, conf, args.run_date, model=args.model, variant=args.variant, holdout=args.holdout)
    elif args.job == "check":
        from jobs import check
        check.run(spark, conf, args.run_date, variant=args.variant)
    elif args.job == "stream":
        from jobs import stream
        stream.run(spark, conf, args.run_date, trigger=args.trigger)
    elif args.job == "ab":
        from jobs import ab
        (ab.assign if args.action == "assign" else ab.evaluate)(spark, conf, args.run_date)
    elif args.job == "train":
        from jobs import train
        train.run(spark, conf, args.run_date, profile_name=args.profile, warm_from=args.warm_from)
    elif args.job == "train-explainer":
        from jobs import train_explainer
        train_explainer.run(spark, conf, args.run_date)
    elif args.job == "demo":
        from jobs import demo
        demo.run(spark, conf, args.run_date)
    elif args.job == "maintain":
        from jobs import maintain
        maintain.run(spark, conf, args.run_date)
    elif args.job == "info":
        from jobs import info
        info.run(spark, conf, as_json=args.json)
    elif args.job == "sql":
        spark.sql(args.statement).show(50, truncate=100)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure()
    try:
        conf = load_conf(args.conf, args.set)
        if args.job == "models":             # reads the registry only: no Spark session
            from jobs import models
            models.run(conf, as_json=args.json, promote=args.promote, promote_if_better=args.promote_if_better)
            return 0
        if args.job == "export":             # registry -> bundles: no Spark session either
            from jobs import export
            export.run(conf, args.model, args.precision.split(",") if args.precision else None, args.force)
            return 0
        if args.job == "metastore-init":     # DataNucleus SchemaTool in a JVM of its own: no Spark session
            from lakerec.metastore import init_schema
            print(f"lakerec metastore-init succeeded: the Hive metastore schema is in {init_schema(conf)}")
            return 0
        if args.job == "submit-args":        # conf -> spark-submit arguments: no Spark session
            from jobs import submit
            submit.run(conf, as_json=args.json)
            return 0
        from lakerec.spark import build_session, stop_session
        spark = build_session(conf)
        try:
            dispatch(args, spark, conf)
        finally:
            stop_session(spark)
        return 0
    except (LakeRecError, BundleError) as exc:
        print(f"lakerec {args.job}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
