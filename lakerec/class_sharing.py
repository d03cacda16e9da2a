"""Class-data sharing (AppCDS, JDK 13+) for the driver JVM a job launches itself (`lakerec <job>`):
the classes every job loads (Spark, Hive's metastore client, their dependencies) archived once per
machine and mapped at start-up instead of read and verified again by every job
(bench/results/fixed_cost.md measures the difference).

The first job that finds no archive writes one as its JVM exits (`-XX:ArchiveClassesAtExit`, ~20 s
once, under a temporary name that `adopt` renames once the JVM has exited cleanly); later jobs map it
(`-XX:SharedArchiveFile`). The archive is keyed by what the JVM checks it against (the java binary,
Spark's jars and launcher environment, the driver's extra class path), and the JVM ignores one that
does not match; its warning is silenced because unified logging writes to stdout, which
`lakerec info --json` owns. Classes of `spark.jars` (Delta) come through Spark's own class loader and
are not archived. A driver started by spark-submit (Airflow, a cluster) is left as it is: its JVM
exists before LakeRec's code runs."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lakerec.config import Conf

QUIET = "-Xlog:cds*=off"
ARCHIVE_GLOB = "lakerec-driver-*.jsa"
TMP_GLOB = "lakerec-driver-*.*.tmp"        # <archive stem>.<pid of the writer>.tmp


def _java() -> Path | None:
    """The java binary spark-submit launches: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else (shutil.which("java") and Path(shutil.which("java")))
    return found.resolve() if found and found.exists() else None


def archive_path(conf: Conf, extra_class_path: str = "") -> Path | None:
    """Where this machine's archive for this JVM and class path lives; None when sharing is off or
    there is no java to key it by."""
    java = _java()
    if not conf.settings.spark.class_data_sharing or java is None:
        return None
    import pyspark
    jars = Path(pyspark.__file__).parent / "jars"
    stat = java.stat()
    key = "\0".join([str(java), str(stat.st_size), str(int(stat.st_mtime)), pyspark.__version__,
                     *sorted(p.name for p in jars.glob("*.jar")), extra_class_path,
                     *(os.environ.get(v, "") for v in ("SPARK_HOME", "SPARK_CONF_DIR", "SPARK_DIST_CLASSPATH"))])
    return conf.cache_dir / "jvm" / ARCHIVE_GLOB.replace("*", hashlib.sha256(key.encode()).hexdigest()[:16])


@dataclass(frozen=True)
class Pending:
    """An archive the launched JVM writes at exit: `tmp` until `adopt` makes it `archive`."""
    tmp: Path
    archive: Path


def jvm_options(conf: Conf, extra_class_path: str = "") -> tuple[list[str], Pending | None]:
    """The driver JVM's class-sharing options, decided once: map the archive when there is one (and
    touch it: `lakerec maintain` deletes archives unused for a while), else write it at exit."""
    archive = archive_path(conf, extra_class_path)
    if archive is None:
        return [], None
    try:
        os.utime(archive)
        return [f"-XX:SharedArchiveFile={archive}", QUIET], None
    except FileNotFoundError:
        pass
    archive.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(archive.parent)
    tmp = archive.with_name(f"{archive.stem}.{os.getpid()}.tmp")
    return [f"-XX:ArchiveClassesAtExit={tmp}", QUIET], Pending(tmp, archive)


def remove_stale(folder: Path) -> list[str]:
    """Temporary archives whose writer has gone (killed, or interrupted while its JVM wrote)."""
    removed = []
    for tmp in folder.glob(TMP_GLOB):
        pid = tmp.suffixes[-2].lstrip(".")
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def adopt(pending: Pending, clean_exit: bool) -> None:
    """After the JVM has exited: the archive it wrote becomes the machine's (atomically), unless it
    exited uncleanly (a half-written file is dropped; the next job writes it again)."""
    if clean_exit and pending.tmp.exists() and pending.tmp.stat().st_size > 0:
        os.replace(pending.tmp, pending.archive)
    else:
        pending.tmp.unlink(missing_ok=True)
