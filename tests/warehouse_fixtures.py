"""Small hand-built warehouses for the Spark tests."""
import datetime as dt

from lakerec.sources.store import write_warehouse

T0 = dt.datetime(2001, 3, 4, 12, 0, 0)
SCHEMAS = {  # canonical columns, in the order the test rows list them
    "users": "user_id bigint, age int, gender string, occupation string, zip_code string",
    "items": "item_id bigint, title string, release_year int, genres array<string>",
    "interactions": "user_id bigint, item_id bigint, rating float, event_time timestamp",
}


def conf_for(base_conf, db: str, **columns):
    """A conf whose source and output tables all live in database `db`."""
    overrides = {f"source.{role}.table": f"{db}.{role}" for role in ("users", "items", "interactions")}
    overrides.update({f"tables.{name}": f"{db}.{name}" for name in ("prompts", "quarantine", "runs", "model_metrics")})
    for role, mapping in columns.items():
        for canon, column in mapping.items():
            overrides[f"source.{role}.columns.{canon}"] = column
    return base_conf.with_overrides(overrides)


def write(spark, conf, users, items, interactions, fingerprint="test"):
    frames = {"users": spark.createDataFrame(users, SCHEMAS["users"]),
              "items": spark.createDataFrame(items, SCHEMAS["items"]),
              "interactions": spark.createDataFrame(interactions, SCHEMAS["interactions"])}
    write_warehouse(frames, conf, fingerprint)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)
