"""The configuration's schema: every section and key LakeRec reads, with its type.

The defaults live in one place, conf/local.yaml, where each key is documented beside its value; a
file of your own is merged on top of it (lakerec/config.py), and the merged tree is validated here
once, at load. So every field below is required (the default file provides it) and a key that is
not listed here, a misspelt one included, stops the job with its dotted path (exit 2) instead of
being silently ignored. Free-form sections (Spark's own settings, column mappings, training
profiles) are mappings; the training profiles are checked against their dataclasses when a run
loads one (lakerec/profiles.py:load_profile).

Code reads values through `Conf.get("a.b")` (no fallback: a path the schema does not know is an
error) or the typed `Conf.settings.a.b`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import datetime as dt

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, ValidationError

from lakerec.errors import ConfigError
from rec_udf.explanations.evidence import EVIDENCE_ITEMS


class Section(BaseModel):
    # A number where text is expected (a salt, a password) is text; anything else of the wrong type fails.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


def _iso(value: Any) -> Any:
    """YAML reads an unquoted 1990-01-01 as a date: keep it as the ISO text the code parses."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


IsoText = Annotated[str, BeforeValidator(_iso)]


class Metastore(Section):
    url: str | None
    user: str | None
    password: str | None
    driver: str | None
    driver_package: str | None


class Spark(Section):
    master: str
    app_name: str
    log_level: str
    python: str | None
    hive_catalog: bool
    metastore: Metastore
    delta_jars_dir: str | None          # None: resolve spark.delta_package through Ivy
    delta_package: str
    class_data_sharing: bool
    config: dict[str, Any]


class Tables(Section):
    prompts: str
    quarantine: str
    runs: str
    model_metrics: str
    holdout_prompts: str
    recommendations: str
    latest_recommendations: str
    holdout_recommendations: str
    live_recommendations: str
    ab_assignments: str
    ab_metrics: str


class SourceTable(Section):
    table: str
    columns: dict[str, str]            # canonical role -> your column (lakerec/sources/schema.py)


class Source(Section):
    users: SourceTable
    items: SourceTable
    interactions: SourceTable


class Validation(Section):
    rating_min: float
    rating_max: float
    min_event_time: IsoText
    future_tolerance_hours: float
    nullable: list[str]
    min_release_year: int
    max_release_years_ahead: int
    max_title_chars: int


class Textualize(Section):
    max_prompt_tokens: int
    max_history_items: int
    item_noun_plural: str
    history_verb: str
    holdout_users: int | None


class Models(Section):
    registry_dir: str
    bundles_dir: str


class Export(Section):
    precisions: list[Literal["fp32", "fp16", "int8"]]
    explainer: bool
    threads: int | None


class Explainer(Section):
    train_prompts: int
    heldout_prompts: int
    self_training: dict[str, Any]


class Score(Section):
    model: str
    precision: Literal["auto", "fp32", "fp16", "int8"]
    top_k: int
    explain_top_k: int
    explainer: Literal["llm", "template", "off"]
    max_new_tokens: int
    explain_batch_size: PositiveInt
    explain_attempts: Annotated[int, Field(ge=1, le=EVIDENCE_ITEMS)]   # one attempt per evidence item at most
    batch_size: Literal["auto"] | PositiveInt
    arrow_max_records_per_batch: int
    partitions: Literal["auto"] | PositiveInt | None
    device: Literal["auto", "cuda", "cpu"]
    allow_cpu_fallback: bool
    ship: Literal["auto", "archive", "shared"]


class Quality(Section):
    max_quarantined_share: float


class Maintain(Section):
    vacuum_retention_hours: float
    archive_retention_days: float
    listing_tasks: int | None


class Stream(Section):
    model: str | None
    checkpoint_dir: str | None
    max_files_per_trigger: int | None


class AB(Section):
    experiment: str
    salt: str
    variants: dict[str, dict[str, Any]]
    metrics_k: int
    bootstrap: int
    confidence: float
    seed: int


class Train(Section):
    profile: str
    promote: bool
    threads: int | None
    profiles: dict[str, dict[str, Any]]


class Settings(Section):
    warehouse_root: str
    cache_dir: str
    spark: Spark
    tables: Tables
    source: Source
    validation: Validation
    textualize: Textualize
    models: Models
    export: Export
    explainer: Explainer
    score: Score
    quality: Quality
    maintain: Maintain
    stream: Stream
    ab: AB
    train: Train


_MESSAGES = {"extra_forbidden": "unknown key (misspelt? conf/local.yaml lists every key)",
             "missing": "missing (conf/local.yaml has its default)"}


def validate(tree: dict, source: str) -> Settings:
    """The merged tree as typed settings; ConfigError naming each bad key's path otherwise."""
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(part) for part in error["loc"])
            problems.append(f"{path}: {_MESSAGES.get(error['type'], error['msg'])}"
                            + ("" if error["type"] in _MESSAGES else f" (got {error.get('input')!r})"))
        raise ConfigError(f"{source}: invalid configuration: " + "; ".join(problems)) from None
