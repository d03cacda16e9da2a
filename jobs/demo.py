"""`lakerec demo`: the whole local pipeline in one session, then sample rows through SQL.
Today: ingest -> validate + textualize -> train (quick profile) and register the model -> export the
champion to ONNX bundles. A later issue adds scoring."""
from __future__ import annotations

from jobs import export, ingest, models, textualize, train


def run(spark, conf, run_date) -> None:
    ingest.run(spark, conf, run_date)
    textualize.run(spark, conf, run_date)
    trained = train.run(spark, conf, run_date)
    exported = export.run(conf, "champion")
    prompts = conf.require("tables.prompts")
    query = (f"SELECT user_id, n_history_total, n_history_kept, prompt_tokens, prompt "
             f"FROM {prompts} WHERE run_date = DATE'{run_date.isoformat()}' ORDER BY user_id LIMIT 3")
    print(f"\n-- sample prompts, queried by table name:\n{query};")
    for row in spark.sql(query).collect():
        print(f"\nuser {row.user_id}: {row.n_history_kept} of {row.n_history_total} interactions, "
              f"{row.prompt_tokens} pre-tokens\n  {row.prompt[:600]}{'...' if len(row.prompt) > 600 else ''}")
    counts = spark.sql(
        "SELECT (SELECT count(*) FROM {u}) AS users, (SELECT count(*) FROM {i}) AS items, "
        "(SELECT count(*) FROM {x}) AS interactions, (SELECT count(*) FROM {p} WHERE run_date = DATE'{d}') AS prompts"
        .format(u=conf.require("source.users.table"), i=conf.require("source.items.table"),
                x=conf.require("source.interactions.table"), p=prompts, d=run_date.isoformat())).first()
    print(f"\nwarehouse: users={counts.users} items={counts.items} interactions={counts.interactions}; "
          f"prompts for {run_date}: {counts.prompts}")
    print("query them yourself:  lakerec sql \"SELECT * FROM lakerec.prompts LIMIT 5\"   "
          "(or any Spark session on this warehouse: see `lakerec info`)")
    print(f"\n-- registered models (lakerec models); the report of this run: {trained.metrics['report']}")
    models.run(conf)
    print(f"\n-- the champion {exported['version']} as ONNX bundles (lakerec export; docs/bundle.md):")
    for precision, path in exported["bundles"].items():
        print(f"  {precision:5} {path}")
