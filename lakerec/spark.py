"""SparkSession builder: local mode by default, Delta SQL extension and catalog, Delta jars from
the local Maven-fetched folder (or spark.jars.packages), and a persistent Hive catalog backed by
an embedded Derby metastore under the warehouse root, so table names outlive the process.

Two ways to start a job, one set of settings (`session_config`):
- `lakerec <job>` (or `python jobs/cli.py <job>`): this module starts the JVM itself with them.
- `spark-submit jobs/cli.py <job>` (Airflow's SparkSubmitOperator, a cluster): the JVM exists before
  any of this code runs, so the master comes from spark-submit and the settings must be passed to
  it; `lakerec submit-args` prints them (jobs/submit.py) and the DAGs pass them on."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from lakerec import class_sharing
from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.jars import local_jars
from lakerec.metastore import check_metastore_free, metastore_settings

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG4J_CONFIG = Path(__file__).resolve().parent / "resources" / "log4j2.properties"
JVM_EXIT_TIMEOUT_S = 60

log = logging.getLogger(__name__)
_pending_archive: class_sharing.Pending | None = None     # the class archive this process's JVM writes at exit


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
    if conf.get("spark.hive_catalog"):
        settings["spark.sql.catalogImplementation"] = "hive"
        settings.update(metastore_settings(conf))
    java_options = [f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]
    if conf.get("spark.hive_catalog"):
        # derby.log goes under the warehouse root instead of the current directory.
        java_options.append(f"-Dderby.system.home={root}")
    settings["spark.driver.extraJavaOptions"] = " ".join(java_options)
    for key, value in (conf.get("spark.config") or {}).items():
        settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return settings


def python_interpreter(conf: Conf) -> str:
    """The Python that runs the driver and the executors' workers: conf `spark.python`, or this one."""
    return conf.get("spark.python") or sys.executable


def launched_by_spark_submit() -> bool:
    """True in a driver started by `spark-submit`: its JVM (master, jars, memory) is already up.
    spark-submit's PythonRunner hands the driver its gateway port in this variable; a session the
    driver starts itself (pyspark's launch_gateway) does not set it in the driver's environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(conf: Conf):
    """Create (or return the running) SparkSession configured from conf."""
    global _pending_archive
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    Path(conf.warehouse_root).mkdir(parents=True, exist_ok=True)
    check_metastore_free(conf)
    submitted = launched_by_spark_submit()
    builder = SparkSession.builder
    if not submitted:          # under spark-submit the master is the one it was given (the cluster's)
        # Python workers run the driver's interpreter (this virtual environment) unless conf says otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", python_interpreter(conf))
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python_interpreter(conf))
        builder = builder.master(conf.get("spark.master")).appName(conf.get("spark.app_name"))
    settings = session_config(conf)
    if not submitted and SparkContext._active_spark_context is None:       # this process launches the JVM
        options, _pending_archive = class_sharing.jvm_options(conf, settings.get("spark.driver.extraClassPath", ""))
        settings["spark.driver.extraJavaOptions"] = " ".join([settings["spark.driver.extraJavaOptions"], *options])
    for key, value in settings.items():
        builder = builder.config(key, value)
    if conf.get("spark.hive_catalog"):
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log_level"))
    if conf.get("spark.hive_catalog") and conf.get("spark.metastore.url"):
        _require_metastore_schema(spark, conf)
    if not _class_loadable(spark, DELTA_CATALOG):
        stop_session(spark)
        how = ("this driver was started by spark-submit without LakeRec's settings: pass the ones "
               "`lakerec submit-args` prints (docs/airflow.md)") if submitted else (
               f"check spark.delta_jars_dir ({conf.get('spark.delta_jars_dir')}) or spark.delta_package")
        raise ConfigError(f"the Delta Lake jars are not on the Spark driver's classpath: {how}")
    return spark


def stop_session(spark) -> None:
    """Stop the session and, when this process started the JVM, wait for the JVM to exit. Left to
    itself it exits a moment after Python does, still holding the embedded metastore, and the next
    job of a chain (`lakerec validate ... && lakerec textualize ...`, consecutive Airflow tasks) found
    it in use. Under spark-submit the JVM is the driver's parent and ends after it: nothing to wait for."""
    global _pending_archive
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    try:
        spark.stop()
    except Exception as exc:            # a JVM already gone: what matters now is the job's own outcome
        log.warning("stopping the Spark session: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    proc = getattr(gateway, "proc", None)
    if proc is None or launched_by_spark_submit():
        return
    gateway.shutdown()                  # py4j's connections closed first: none is left to break as the JVM goes
    proc.stdin.close()                  # PythonGatewayServer exits at end of its stdin
    try:
        proc.wait(JVM_EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("the Spark JVM (pid %s) has not exited %ss after the job: killed", proc.pid, JVM_EXIT_TIMEOUT_S)
        proc.kill()
        proc.wait()
    if _pending_archive:
        class_sharing.adopt(_pending_archive, clean_exit=proc.returncode == 0)
        _pending_archive = None
    SparkContext._gateway = SparkContext._jvm = None      # a later session in this process starts its own


def _require_metastore_schema(spark, conf: Conf) -> None:
    try:
        spark.catalog.databaseExists("default")         # the Hive client connects here
    except Exception as exc:
        if "Required table missing" not in str(exc) and "metastore database is not initialized" not in str(exc):
            raise
        stop_session(spark)
        raise ConfigError(f"the metastore database {conf.get('spark.metastore.url')} has no Hive schema yet: "
                          "run `lakerec metastore-init` once (docs/metastore.md)") from None


def _class_loadable(spark, name: str) -> bool:
    loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.loadClass(name)
        return True
    except Exception:          # py4j wraps the JVM's ClassNotFoundException
        return False
