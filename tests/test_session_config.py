"""Spark session settings: Delta jars from the local folder when complete, packages otherwise."""
from lakerec.config import load_conf
from lakerec.jars import COMPLETE_MARK
from lakerec.spark import DELTA_CATALOG, DELTA_EXTENSION, session_config


def test_local_jar_folder_when_complete_else_maven_coordinates(tmp_path):
    folder = tmp_path / "jars"
    conf = load_conf(None, [f"spark.delta_jars_dir={folder}", f"warehouse_root={tmp_path}/wh"])
    settings = session_config(conf)
    assert settings["spark.jars.packages"] == "io.delta:delta-spark_4.2_2.13:4.4.0"
    assert "spark.jars" not in settings

    folder.mkdir()
    (folder / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    assert "spark.jars" not in session_config(conf)          # incomplete download: not used
    (folder / COMPLETE_MARK).write_text("done")
    settings = session_config(conf)
    assert settings["spark.jars"].endswith("delta-spark_4.2_2.13-4.4.0.jar")
    assert "spark.jars.packages" not in settings


def test_delta_catalog_hive_metastore_and_overrides(tmp_path):
    conf = load_conf(None, [f"warehouse_root={tmp_path}/wh", "spark.config.spark.sql.shuffle.partitions=3"])
    settings = session_config(conf)
    assert settings["spark.sql.extensions"] == DELTA_EXTENSION
    assert settings["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert settings["spark.sql.catalogImplementation"] == "hive"
    assert f"databaseName={tmp_path}/wh/metastore_db" in settings["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert settings["spark.sql.warehouse.dir"] == f"{tmp_path}/wh/tables"
    assert settings["spark.sql.shuffle.partitions"] == "3"
    no_hive = session_config(conf.with_overrides({"spark.hive_catalog": False}))
    assert "spark.sql.catalogImplementation" not in no_hive
