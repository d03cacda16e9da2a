"""SparkSession builder: local mode by default, Delta SQL extension and catalog, Delta jars from
the local Maven-fetched folder (or spark.jars.packages), and a persistent Hive catalog backed by
an embedded Derby metastore under the warehouse root, so table names outlive the process.

Two ways to start a job, one set of settings (`session_config`):
- `lakerec <job>` (or `python jobs/cli.py <job>`): this module starts the JVM itself with them.
- `spark-submit jobs/cli.py <job>` (Airflow's SparkSubmitOperator, a cluster): the JVM exists before
  any of this code runs, so the master comes from spark-submit and the settings must be passed to
  it; `lakerec submit-args` prints them (jobs/submit.py) and the DAGs pass them on."""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from lakerec.config import Conf
from lakerec.errors import ConfigError
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


def python_interpreter(conf: Conf) -> str:
    """The Python that runs the driver and the executors' workers: conf `spark.python`, or this one."""
    return conf.get("spark.python") or sys.executable


def launched_by_spark_submit() -> bool:
    """True in a driver started by `spark-submit`: its JVM (master, jars, memory) is already up.
    spark-submit's PythonRunner hands the driver its gateway port in this variable; a session the
    driver starts itself (pyspark's launch_gateway) does not set it in the driver's environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def embedded_metastore(conf: Conf) -> Path | None:
    """The embedded Derby metastore folder, when conf uses one (the local default)."""
    if not conf.get("spark.hive_catalog", True):
        return None
    if "spark.hadoop.javax.jdo.option.ConnectionURL" in (conf.get("spark.config") or {}):
        return None             # a metastore of the user's: a server admits many processes
    return conf.warehouse_root / "metastore_db"


def metastore_holder(folder: Path) -> int | None:
    """The pid of another process that has this embedded Derby metastore booted, else None.
    Derby keeps an exclusive POSIX lock on dbex.lck while booted (a killed process leaves the file,
    not the lock); probing that lock is how we know before a JVM is started."""
    lock = folder / "dbex.lck"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    except OSError:
        owner = _posix_lock_owner(lock)
        return owner if owner is not None else -1
    finally:
        os.close(fd)


def _posix_lock_owner(path: Path) -> int | None:
    inode = path.stat().st_ino
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:       # "1: POSIX  ADVISORY  WRITE 17519 fe:00:9986698 0 EOF"
        parts = line.split()
        if len(parts) > 5 and parts[1] == "POSIX" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return int(parts[4])
    return None


def _describe_process(pid: int) -> str:
    """`pid N (command)`, with the parent's command when N is a JVM (the job that started it)."""
    def cmdline(p):
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return ""
    def parent(p):
        try:
            return int(next(line.split()[1] for line in Path(f"/proc/{p}/status").read_text().splitlines()
                            if line.startswith("PPid:")))
        except (OSError, StopIteration, ValueError):
            return None
    text = cmdline(pid)
    if "java" in text.split(" ", 1)[0] and parent(pid):
        text = f"the JVM of pid {parent(pid)}: {cmdline(parent(pid))}"
    return f"pid {pid} ({text[:200] or 'command unknown'})"


def _check_metastore_free(conf: Conf) -> None:
    folder = embedded_metastore(conf)
    holder = metastore_holder(folder) if folder else None
    if holder is None:
        return
    if holder > 0:
        ours = holder == os.getppid() or f"PPid:\t{os.getpid()}\n" in _read(f"/proc/{holder}/status")
        if ours:                # this job's own JVM (a session already started in this process)
            return
    who = _describe_process(holder) if holder > 0 else "a process this machine does not name"
    raise ConfigError(f"the warehouse's embedded metastore {folder} is in use by {who}; the local default "
                      "(embedded Derby) admits one process at a time: wait for that job to end, or give "
                      "spark.config a shared metastore (spark.hadoop.javax.jdo.option.ConnectionURL)")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def build_session(conf: Conf):
    """Create (or return the running) SparkSession configured from conf."""
    from pyspark.sql import SparkSession

    Path(conf.warehouse_root).mkdir(parents=True, exist_ok=True)
    _check_metastore_free(conf)
    submitted = launched_by_spark_submit()
    builder = SparkSession.builder
    if not submitted:          # under spark-submit the master is the one it was given (the cluster's)
        # Python workers run the driver's interpreter (this virtual environment) unless conf says otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", python_interpreter(conf))
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", python_interpreter(conf))
        builder = builder.master(conf.get("spark.master", "local[2]")).appName(conf.get("spark.app_name", "lakerec"))
    for key, value in session_config(conf).items():
        builder = builder.config(key, value)
    if conf.get("spark.hive_catalog", True):
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("spark.log_level", "WARN"))
    if not _class_loadable(spark, DELTA_CATALOG):
        spark.stop()
        how = ("this driver was started by spark-submit without LakeRec's settings: pass the ones "
               "`lakerec submit-args` prints (docs/airflow.md)") if submitted else (
               f"check spark.delta_jars_dir ({conf.get('spark.delta_jars_dir')}) or spark.delta_package")
        raise ConfigError(f"the Delta Lake jars are not on the Spark driver's classpath: {how}")
    return spark


def _class_loadable(spark, name: str) -> bool:
    loader = spark._jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.loadClass(name)
        return True
    except Exception:          # py4j wraps the JVM's ClassNotFoundException
        return False
