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
