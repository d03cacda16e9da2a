"""`lakerec demo`: the whole local pipeline in one session, then sample rows through SQL.
ingest -> validate + textualize -> train (quick profile) and register the model -> export the champion
to ONNX bundles -> score every user with it into recs.user_recommendations, then a few users' top-5
with explanations and the SQL to query them."""
from __future__ import annotations

from jobs import export, ingest, models, score, textualize, train
from lakerec.registry import Registry


def run(spark, conf, run_date) -> None:
    ingest.run(spark, conf, run_date)
    textualize.run(spark, conf, run_date)
    trained = train.run_unless_current(spark, conf, run_date)
    exported = export.run(conf, "champion")
    scored = score.run(spark, conf, run_date)
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
    print(f"\n-- registered models (lakerec models); training report: {trained}")
    models.run(conf)
    print(f"\n-- the champion {exported['version']} as ONNX bundles (lakerec export; docs/bundle.md):")
    for precision, path in exported["bundles"].items():
        print(f"  {precision:5} {path}")
    show_recommendations(spark, conf, run_date, scored)


def show_recommendations(spark, conf, run_date, scored) -> None:
    recs = conf.require("tables.recommendations")
    query = (f"SELECT user_id, rank, item_title, round(score, 3) AS score, explanation, explanation_source\n"
             f"FROM {recs}\nWHERE run_date = DATE'{run_date.isoformat()}' AND variant = 'default' AND rank <= 5\n"
             f"  AND user_id IN (1, 2, 3)\nORDER BY user_id, rank")
    print(f"\n-- top-5 of three users by {scored.metrics['model_version']} "
          f"({scored.metrics['users']} users scored, {scored.metrics['users_per_s']} users/s):\n{query};")
    user = None
    for row in spark.sql(query).collect():
        if row.user_id != user:
            user = row.user_id
            print(f"\nuser {user}:")
        why = f"\n       [{row.explanation_source}] {row.explanation}" if row.explanation else ""
        print(f"  {row.rank}. {row.item_title} ({row.score}){why}")
    print_explanation_sources(spark, conf, run_date)
    print_coverage(spark, conf, run_date, scored.metrics["model_version"])
    print(f"\nmore queries (docs/sql.md):  lakerec sql \"SELECT * FROM {conf.require('tables.latest_recommendations')} "
          "WHERE user_id = 1 ORDER BY rank\"")


def print_explanation_sources(spark, conf, run_date) -> None:
    """How many explanations the LLM wrote (passing the faithfulness check) and why the others fell back."""
    recs = conf.require("tables.recommendations")
    rows = spark.sql(f"SELECT explanation_source AS source, coalesce(split(explanation_rejected, ':')[0], '') AS why, "
                     f"count(*) AS n FROM {recs} WHERE run_date = DATE'{run_date.isoformat()}' AND variant = 'default' "
                     f"AND explanation IS NOT NULL GROUP BY 1, 2 ORDER BY n DESC").collect()
    total = sum(r.n for r in rows)
    if not total:
        return
    llm = sum(r.n for r in rows if r.source == "llm")
    reasons = ", ".join(f"{r.why} {r.n}" for r in rows if r.source != "llm")
    print(f"\nexplanations: {llm} of {total} ({llm / total:.1%}) written by the explainer LLM and passed the "
          f"faithfulness check; the others are the data-built sentence ({reasons or 'none'})")


def print_coverage(spark, conf, run_date, version: str) -> None:
    """How much of the catalogue the users' top-10 lists reach: the scored table, and at training the
    served model against its own ID model (SASRec, or its seed ensemble) and a single SASRec on the
    test split."""
    recs, items = conf.require("tables.recommendations"), conf.require("source.items.table")
    row = spark.sql(f"SELECT (SELECT count(DISTINCT item_id) FROM {recs} WHERE run_date = DATE'{run_date.isoformat()}' "
                    f"AND variant = 'default' AND rank <= 10) AS shown, (SELECT count(*) FROM {items}) AS items").first()
    metrics = Registry.from_conf(conf).describe(version).get("metrics", {})
    served, id_model, sasrec = (metrics.get(key, {}).get("coverage@10")
                                for key in ("test", "test_id_model", "test_sasrec"))
    line = (f"\ncatalogue coverage of every user's top-10: {row.shown} of {row.items} items "
            f"({row.shown / max(row.items, 1):.1%})")
    if served is not None and sasrec is not None:
        line += f"; at training (test split): {version} {served:.1%}"
        line += f", its ID model {id_model:.1%}" if id_model is not None else ""
        line += f", one SASRec {sasrec:.1%}"
    print(line)
