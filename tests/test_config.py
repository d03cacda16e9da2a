from pathlib import Path

import pytest

from lakerec.config import load_conf, parse_overrides
from lakerec.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


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


def test_a_misspelt_or_mistyped_key_in_a_conf_file_stops_with_its_path(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("score:\n  top_kk: 5\nvalidation:\n  rating_max: five\n")
    with pytest.raises(ConfigError) as err:
        load_conf(own)
    assert "score.top_kk: unknown key" in str(err.value)
    assert "validation.rating_max" in str(err.value) and "'five'" in str(err.value)
    with pytest.raises(ConfigError, match=r"score\.precision"):
        load_conf(None, ["score.precision=fp8"])
    for key, bad in (("explain_attempts", "0"), ("explain_attempts", "4"), ("explain_batch_size", "0")):
        with pytest.raises(ConfigError, match=rf"score\.{key}"):
            load_conf(None, [f"score.{key}={bad}"])
    assert load_conf(None, ["score.explain_attempts=1"]).settings.score.explain_attempts == 1
    assert load_conf(None, []).settings.score.batch_size == "auto"
    assert load_conf(None, ["score.batch_size=32"]).settings.score.batch_size == 32
    for bad in ("0", "big"):
        with pytest.raises(ConfigError, match=r"score\.batch_size"):
            load_conf(None, [f"score.batch_size={bad}"])
    with pytest.raises(ConfigError, match=r"tables\.recomendations: unknown key"):
        load_conf(None, ["tables.recomendations=x.y"])
    # Free-form sections stay free: Spark's own settings pass through.
    assert load_conf(None, ["spark.config.spark.foo.bar=1"]).get("spark.config")["spark.foo.bar"] == 1


def test_values_are_typed_by_the_schema_and_unknown_paths_in_code_are_errors():
    conf = load_conf(None, ["score.top_k=7", "validation.rating_min=2"])
    assert conf.settings.score.top_k == 7 and conf.get("score.top_k") == 7
    assert conf.get("validation.rating_min") == 2.0 and isinstance(conf.get("validation.rating_min"), float)
    with pytest.raises(KeyError, match="score.topk"):
        conf.get("score.topk")


def test_no_configuration_default_is_written_in_code():
    """Every default lives in conf/local.yaml: no `conf.get(key, fallback)` in product code."""
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    call = re.compile(r"conf\.get\(\s*(f?['\"][^'\"]*['\"])\s*,")
    offenders = [f"{path.relative_to(root)}:{n}" for folder in ("lakerec", "jobs", "rec_udf", "model_export",
                                                               "airflow", "bench")
                 for path in sorted((root / folder).rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1) if call.search(line)]
    assert offenders == []
    assert call.search('x = conf.get("score.top_k", 10)')          # the pattern does catch a fallback


def test_text_where_yaml_reads_a_date_or_a_number_and_overrides_named_in_errors():
    conf = load_conf(None, ["validation.min_event_time=1990-01-01", "ab.salt=12345"])
    assert conf.get("validation.min_event_time") == "1990-01-01" and conf.get("ab.salt") == "12345"
    with pytest.raises(ConfigError, match=r"with overrides score\.top_k: invalid configuration: score\.top_k"):
        load_conf(None, ["score.top_k=many"])


def test_info_masks_secrets():
    from jobs.info import effective_configuration
    conf = load_conf(None, ["spark.metastore.password=hunter2", "spark.metastore.url=jdbc:postgresql://bob:pw@db/m",
                            "spark.config.spark.hadoop.javax.jdo.option.ConnectionPassword=hunter3"])
    shown = str(effective_configuration(conf))
    assert "hunter2" not in shown and "hunter3" not in shown and "bob:pw" not in shown
    assert effective_configuration(conf)["score"]["top_k"] == 10


def test_a_misspelt_key_in_a_training_profile_stops_with_its_path():
    from lakerec.profiles import load_profile
    conf = load_conf(None, ["train.profiles.quick.text_veiw=true"])
    with pytest.raises(ConfigError, match=r"train\.profiles\.quick: unknown key\(s\) text_veiw"):
        load_profile(conf, "quick")
    assert load_profile(load_conf(None, []), "quick").text_view is True


def test_id_members_and_lm_precision_are_checked_when_a_profile_loads():
    from lakerec.profiles import load_profile
    assert load_profile(load_conf(None, []), "quick").id_members == 2
    for value in ("0", "2.5", "true", "two"):
        with pytest.raises(ConfigError, match=r"train\.profiles\.quick\.id_members"):
            load_profile(load_conf(None, [f"train.profiles.quick.id_members={value}"]), "quick")
    with pytest.raises(ConfigError, match=r"train\.profiles\.quick\.llm_train\.precision: 'fp64'"):
        load_profile(load_conf(None, ["train.profiles.quick.llm_train.precision=fp64"]), "quick")
    assert load_profile(load_conf(None, ["train.profiles.quick.llm_train.precision=fp32"]),
                        "quick").llm_train.precision == "fp32"


def test_a_mix_confidence_outside_zero_to_one_stops_with_its_path():
    """95 meant as a percentage would silently switch every added term off."""
    from lakerec.profiles import load_profile
    with pytest.raises(ConfigError, match=r"train\.profiles\.quick\.mix_confidence: 95"):
        load_profile(load_conf(None, ["train.profiles.quick.mix_confidence=95"]), "quick")
    assert load_profile(load_conf(None, ["train.profiles.quick.mix_confidence=0.9"]), "quick").mix_confidence == 0.9


def test_the_training_conf_hash_covers_code_defaults_not_just_the_file():
    """`make demo` skips training when the champion's hash matches: a setting that equals its default
    must hash the same whether written or not, and a changed value must change it."""
    from lakerec.profiles import load_profile
    from lakerec.registry import training_conf_hash

    def hashed(*overrides):
        conf = load_conf(None, list(overrides))
        return training_conf_hash(load_profile(conf, "quick").settings(), conf.get("textualize"))

    default = load_profile(load_conf(None, []), "quick").mix_confidence
    assert hashed() == hashed(f"train.profiles.quick.mix_confidence={default}")
    assert hashed() != hashed("train.profiles.quick.mix_confidence=0.5")
    assert hashed() != hashed("textualize.max_prompt_tokens=128")


def test_bundle_shipping_auto_reads_the_bundle_in_place_only_under_a_local_master():
    from lakerec.scoring.shipping import shipping_mode
    auto = load_conf(None, [])
    assert auto.settings.score.ship == "auto"
    assert shipping_mode(auto, "local[2]") == shipping_mode(auto, "local") == "shared"
    assert shipping_mode(auto, "local-cluster[2,1,1536]") == shipping_mode(auto, "spark://host:7077") == "archive"
    assert shipping_mode(load_conf(None, ["score.ship=archive"]), "local[2]") == "archive"
    with pytest.raises(ConfigError, match=r"score\.ship"):
        load_conf(None, ["score.ship=ftp"])


def test_scoring_partitions_auto_splits_explainer_work_finer():
    """auto: spark.default.parallelism scoring tasks when ranking alone, LLM_TASK_FACTOR times that when
    the explainer LLM writes sentences; a number is taken as given; anything else is a config error."""
    from lakerec.scoring.stage import LLM_TASK_FACTOR, scoring_partitions
    ranking = load_conf(None, ["score.explain_top_k=0"])
    assert ranking.settings.score.partitions == "auto"
    assert scoring_partitions(ranking, 2) == 2
    llm = load_conf(None, ["score.explain_top_k=1", "score.explainer=llm"])
    assert scoring_partitions(llm, 2) == 2 * LLM_TASK_FACTOR > 2
    assert scoring_partitions(load_conf(None, ["score.explain_top_k=1", "score.explainer=template"]), 2) == 2
    assert scoring_partitions(load_conf(None, ["score.explain_top_k=1", "score.partitions=3"]), 2) == 3
    with pytest.raises(ConfigError, match=r"score\.partitions"):
        load_conf(None, ["score.partitions=0"])


def test_auto_precision_takes_the_bundle_made_for_the_executors_kind_else_fp32(tmp_path):
    import json
    from lakerec.registry import Registry
    from lakerec.scoring.bundle_choice import precision_for

    def chosen(exported, *overrides, lm_weight=0.0, explainer="fp32", spark_conf=None):
        root = tmp_path / f"{'-'.join(exported)}-{lm_weight}-{explainer}"
        conf = load_conf(None, [f"models.bundles_dir={root}", *overrides])
        registry = Registry.from_conf(conf)
        for precision in exported:      # a real manifest (tests/data: v0001 int8, exported 2026-12-06), edited
            directory = registry.bundle_dir("v0001", precision)
            directory.mkdir(parents=True, exist_ok=True)
            manifest = json.loads((REPO / "tests" / "data" / "manifest_v2.json").read_text())
            manifest["hybrid"]["lm_weight"] = lm_weight
            manifest["explainer"] = explainer and {**manifest["explainer"], "precision": explainer}
            (directory / "manifest.json").write_text(json.dumps(manifest))
        return precision_for(conf, registry, "v0001", spark_conf)

    assert load_conf(None, []).get("score.precision") == "auto"
    assert chosen(["fp32", "fp16", "int8"]) == "int8"                 # CPU executors (no GPU asked for)
    assert chosen(["fp32", "int8"], explainer=None) == "int8"
    assert chosen(["fp32"]) == "fp32"                                 # int8 not exported: the reference
    assert chosen(["fp32", "int8"], lm_weight=0.7) == "fp32"          # an int8 LM user encoder: not judged
    assert chosen(["fp32", "int8"], explainer="int4") == "fp32"       # exported before 2026-12-06
    assert chosen(["fp32", "fp16", "int8"], "score.device=cuda") == "fp16"
    assert chosen(["fp32", "int8", "fp16"], "spark.config.spark.executor.resource.gpu.amount=1") == "fp16"
    assert chosen(["fp32", "int8", "fp16"], spark_conf={"spark.task.resource.gpu.amount": "1"}) == "fp16"
    assert chosen(["fp32", "int8", "fp16"], "score.device=cpu", spark_conf={"spark.task.resource.gpu.amount": "1"}) == "int8"
    assert chosen(["int8", "fp32"], "score.device=cuda") == "fp32"    # a GPU never gets the CPU bundle
    assert chosen(["fp32", "int8"], "score.precision=fp32") == "fp32"
