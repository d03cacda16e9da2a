import pytest

from lakerec.config import load_conf, parse_overrides
from lakerec.errors import ConfigError


def test_default_conf_expands_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKEREC_HOME", str(tmp_path))
    conf = load_conf()
    assert conf.warehouse_root == tmp_path / "warehouse"
    assert conf.get("source.interactions.columns.event_time") == "event_time"


def test_overrides_parse_yaml_scalars_and_keep_spark_keys_whole():
    conf = load_conf(None, ["spark.config.spark.sql.shuffle.partitions=3", "textualize.max_prompt_tokens=99",
                            "source.items.table=other.products"])
    assert conf.get("spark.config")["spark.sql.shuffle.partitions"] == 3
    assert conf.get("textualize.max_prompt_tokens") == 99
    assert conf.get("source.items.table") == "other.products"


def test_bad_override_and_missing_file_are_clear():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_overrides(["no-equals-sign"])
    with pytest.raises(ConfigError, match="not found"):
        load_conf("/nonexistent/conf.yaml")


def test_own_file_merges_over_the_defaults_and_gpu_example_loads():
    from pathlib import Path
    from lakerec.config import load_conf
    from lakerec.spark import session_config
    conf = load_conf(Path(__file__).resolve().parent.parent / "conf" / "cluster-gpu.yaml")
    assert conf.get("score.device") == "cuda" and conf.get("score.allow_cpu_fallback") is False
    assert conf.get("score.top_k") == 10                       # from conf/local.yaml
    assert conf.get("tables.recommendations") == "recs.user_recommendations"
    settings = session_config(conf)
    assert settings["spark.task.resource.gpu.amount"] == "1"
    assert settings["spark.executor.resource.gpu.discoveryScript"].endswith("gpu_discovery.sh")
    assert settings["spark.python.worker.reuse"] == "true"


def test_own_column_mapping_and_variants_replace_the_defaults_whole(tmp_path):
    from lakerec.config import load_conf
    own = tmp_path / "own.yaml"
    own.write_text("source: {users: {table: shop.customers, columns: {user_id: customer_id}}}\n"
                   "ab: {variants: {a: {share: 1.0, model: champion}}}\nscore: {top_k: 20}\n")
    conf = load_conf(own)
    assert conf.get("source.users.columns") == {"user_id": "customer_id"}          # no default zip_code etc.
    assert conf.get("source.items.columns.title") == "title"                     # sections it leaves alone stay
    assert list(conf.get("ab.variants")) == ["a"] and conf.get("ab.experiment") == "model_comparison"
    assert conf.get("score.top_k") == 20 and conf.get("score.explain_top_k") == 1  # other sections still merge


def test_slice_predicates_escape_what_they_are_given():
    import datetime as dt
    import pytest
    from lakerec.tables import slice_predicate, sql_literal
    assert slice_predicate({"run_date": dt.date(2026, 11, 23), "variant": "b"}) == \
        "`run_date` = DATE '2026-11-23' AND `variant` = 'b'"
    assert sql_literal("x' OR '1'='1") == "'x\\' OR \\'1\\'=\\'1'"
    assert sql_literal("a\\") == "'a\\\\'" and sql_literal(3) == "3"
    assert sql_literal(dt.datetime(2026, 1, 2, 3, 4, 5)) == "TIMESTAMP '2026-01-02 03:04:05'"
    for bad in ({}, {"x": float("nan")}, {"x": None}):
        with pytest.raises((ValueError, TypeError)):
            slice_predicate(bad)
