"""SparkSession builder: local mode by default, Delta SQL extension and catalog, Delta jars from
the local Maven-fetched folder (or spark.jars.packages), and a persistent Hive catalog backed by
an embedded Derby metastore under the warehouse root, so table names outlive the process."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from lakerec.config import Conf
from lakerec.jars import local_jars

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG4J_CONFIG = Path(__file__).resolve().parent / "resources" / "log4j2.properties"


def session_config(conf: Conf) -> dict[str, str]:
    """Every Spark setting LakeRec applies, in order; conf `spark.config` entries win."""
    root = conf.warehouse_root
    settings = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.warehouse.dir": str(root / "tables"),
    }
    jars = local_jars(conf)
    if jars:
        settings["spark.jars"] = ",".join(jars)
    else:
        settings["spark.jars.packages"] = conf.require("spark.delta_package")
    if conf.get("spark.hive_catalog", True):
        metastore = root / "metastore_db"
        settings["spark.sql.catalogImplementation"] = "hive"
        settings["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={metastore};create=true")
    java_options = [f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]
    if conf.get("spark.hive_catalog", True):
        # derby.log goes under the warehouse root instead of the current directory.
        java_options.append(f"-Dderby.system.home={root}")
    settings["spark.driver.extraJavaOptions"] = " ".join(java_options)
    for key, value in (conf.get("spark.config") or {}).items():
        settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return settings


def build_session(conf: Conf):
    """Create (or return the running) SparkSession configured from conf."""
    from pyspark.sql import SparkSession

    Path(conf.warehouse_root).mkdir(parents=True, exist_ok=True)
    # Python workers run the driver's interpreter (this virtual environment) unless conf says otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(conf.get("spark.master", "local[2]")).appName(
        conf.get("spark.app_name", "lakerec"))
    for key, value in session_config(conf).items():
        builder = builder.config(key, value)
    if conf.get("spark.hive_catalog", True):
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log_level", "WARN"))
    return spark
