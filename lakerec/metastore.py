"""The Hive metastore behind LakeRec's table names.

- Local default: embedded Derby under the warehouse root. It admits one process at a time; a second
  job on the same warehouse is stopped before it starts Spark, naming the process that holds it.
- Shared: a database server at `spark.metastore.url` (PostgreSQL, MySQL, MariaDB), which many jobs
  use at once (the nightly chain and `lakerec stream` side by side). Its schema is created once with
  `lakerec metastore-init` (DataNucleus SchemaTool over Hive's own metadata, all tables and
  constraints in one go; letting Hive create tables lazily on PostgreSQL deadlocks: an open
  transaction on TBLS blocks the foreign key DDL of the next table). See docs/metastore.md.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.jars import fetch_package

# By the URL's kind (jdbc:<kind>:...): the driver class, and the Maven coordinate of its jar where
# one is tested (spark.metastore.driver / driver_package win).
JDBC_DRIVERS = {"postgresql": "org.postgresql.Driver", "mysql": "com.mysql.cj.jdbc.Driver",
                "mariadb": "org.mariadb.jdbc.Driver"}
DRIVER_PACKAGES = {"postgresql": "org.postgresql:postgresql:42.7.4"}


def jdbc_kind(url: str) -> str:
    return url.split(":")[1] if url.startswith("jdbc:") else ""


def derby_folder(conf: Conf) -> Path:
    """Where the embedded Derby metastore lives."""
    return conf.warehouse_root / "metastore_db"


def metastore_jars(conf: Conf) -> list[str]:
    """The JDBC driver of a shared metastore, fetched on first use into cache_dir/jars/<artifact>-<version>;
    [] for the embedded default."""
    url = conf.get("spark.metastore.url")
    if not url:
        return []
    coordinate = conf.get("spark.metastore.driver_package") or DRIVER_PACKAGES.get(jdbc_kind(url))
    if not coordinate:
        raise ConfigError(f"spark.metastore.url {url!r}: set spark.metastore.driver_package to the Maven "
                          "coordinate of its JDBC driver")
    _, artifact, version = coordinate.split(":")
    folder = fetch_package(coordinate, conf.cache_dir / "jars" / f"{artifact}-{version}")
    return sorted(str(p) for p in folder.glob("*.jar"))


def metastore_settings(conf: Conf) -> dict[str, str]:
    """The Hive metastore's database: embedded Derby under the warehouse root (the default; one
    process at a time), or the shared database at spark.metastore.url (many processes at once: the
    nightly chain and `lakerec stream` side by side). Its JDBC driver is fetched from Maven and put on
    the driver's class path; its schema is created once by `lakerec metastore-init` (init_schema)."""
    url = conf.get("spark.metastore.url")
    if not url:
        return {"spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={derby_folder(conf)};create=true"}
    driver = conf.get("spark.metastore.driver") or JDBC_DRIVERS.get(jdbc_kind(url))
    if not driver:
        raise ConfigError(f"spark.metastore.url {url!r}: no JDBC driver known for {jdbc_kind(url)!r}; "
                          "set spark.metastore.driver")
    settings = {
        "spark.hadoop.javax.jdo.option.ConnectionURL": url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": driver,
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",    # created whole by `lakerec metastore-init`
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }
    if conf.get("spark.metastore.user"):
        settings["spark.hadoop.javax.jdo.option.ConnectionUserName"] = str(conf.get("spark.metastore.user"))
    if conf.get("spark.metastore.password"):
        settings["spark.hadoop.javax.jdo.option.ConnectionPassword"] = str(conf.get("spark.metastore.password"))
    jars = metastore_jars(conf)
    if jars:                    # on the JVM's own class path: DataNucleus loads the driver by name
        settings["spark.driver.extraClassPath"] = ":".join(jars)
        settings["spark.executor.extraClassPath"] = ":".join(jars)
    return settings


def embedded_metastore(conf: Conf) -> Path | None:
    """The embedded Derby metastore folder, when conf uses one (the local default)."""
    if not conf.get("spark.hive_catalog"):
        return None
    own_url = "spark.hadoop.javax.jdo.option.ConnectionURL" in (conf.get("spark.config") or {})
    if conf.get("spark.metastore.url") or own_url:
        return None             # a metastore server admits many processes
    return derby_folder(conf)


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


def _parent(pid: int) -> int | None:
    """The parent pid of a process, from /proc (None when it cannot be read)."""
    line = next((line for line in _read(f"/proc/{pid}/status").splitlines() if line.startswith("PPid:")), "")
    return int(line.split()[1]) if line.split()[1:] else None


def _describe_process(pid: int) -> str:
    """`pid N (command)`, with the parent's command when N is a JVM (the job that started it)."""
    def cmdline(p):
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return ""
    text = cmdline(pid)
    parent = _parent(pid)
    if "java" in text.split(" ", 1)[0] and parent:
        text = f"the JVM of pid {parent}: {cmdline(parent)}"
    return f"pid {pid} ({text[:200] or 'command unknown'})"


def check_metastore_free(conf: Conf) -> None:
    """Stop with one clear line when another process has the embedded Derby metastore booted."""
    folder = embedded_metastore(conf)
    holder = metastore_holder(folder) if folder else None
    if holder is None:
        return
    if holder > 0:
        ours = holder == os.getppid() or _parent(holder) == os.getpid()
        if ours:                # this job's own JVM (a session already started in this process)
            return
        if _orphaned(holder) and _released_within(folder, ORPHAN_WAIT_S):
            return              # the JVM of a job that has ended, shutting down
    who = _describe_process(holder) if holder > 0 else "a process this machine does not name"
    raise ConfigError(f"the warehouse's embedded metastore {folder} is in use by {who}; the local default "
                      "(embedded Derby) admits one process at a time: wait for that job to end, or set "
                      "spark.metastore.url to a shared metastore database (docs/metastore.md)")


# How long a job waits for an orphaned JVM (its driver gone: a job that ended without stopping it, or
# was killed) to let go of the metastore before calling it in use.
ORPHAN_WAIT_S = 30


def _orphaned(pid: int) -> bool:
    """Whether pid's parent has gone: it was handed to init (pid 1) or to a subreaper (systemd)."""
    ppid = _parent(pid)
    return ppid == 1 or (ppid is not None and _read(f"/proc/{ppid}/comm").strip() == "systemd")


def _released_within(folder: Path, seconds: float) -> bool:
    """Whether the lock is let go within `seconds` (a process that has exited holds no lock, even
    while it waits to be reaped)."""
    deadline = time.monotonic() + seconds
    while metastore_holder(folder) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# Hive 2.3's DataNucleus settings (HiveConf defaults), so the schema matches what Hive's client expects.
_HIVE_DATANUCLEUS = {"datanucleus.identifierFactory": "datanucleus1",
                     "datanucleus.rdbms.useLegacyNativeValueStrategy": "true", "datanucleus.storeManagerType": "rdbms"}


def init_schema(conf: Conf) -> str:
    """Create every table of the Hive metastore schema in the shared database (idempotent)."""
    url = conf.get("spark.metastore.url")
    if not url:
        raise ConfigError("spark.metastore.url is not set: the embedded metastore needs no initialisation")
    settings = {k[len("spark.hadoop."):]: v for k, v in metastore_settings(conf).items() if k.startswith("spark.hadoop.")}
    props = {**_HIVE_DATANUCLEUS, **{k: v for k, v in settings.items() if k.startswith("javax.jdo.")}}
    import pyspark
    spark_jars = Path(pyspark.__file__).parent / "jars"
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java:
        raise ConfigError("java is not on PATH (and JAVA_HOME is not set): it is needed to create the metastore schema")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "datanucleus.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        with zipfile.ZipFile(next(spark_jars.glob("hive-metastore-*.jar"))) as jar:
            (Path(tmp) / "package.jdo").write_bytes(jar.read("package.jdo"))       # Hive's object model
        classpath = ":".join([f"{spark_jars}/*", *metastore_jars(conf)])
        proc = subprocess.run([str(java), "-cp", classpath, "org.datanucleus.store.schema.SchemaTool", "-create",
                               "-api", "JDO", "-props", f"{tmp}/datanucleus.properties", f"{tmp}/package.jdo"],
                              capture_output=True, text=True)
    if proc.returncode != 0 or "completed successfully" not in proc.stdout:
        raise ConfigError(f"could not create the metastore schema at {url}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return url
