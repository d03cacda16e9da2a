"""Class-data sharing (AppCDS, JDK 13+) for the driver JVM: the classes every LakeRec job loads
(Spark, Hive's metastore client, their dependencies) archived once per machine and mapped at start-up
instead of read and verified again by every job. Measured: a job's fixed cost falls by ~5 s of ~20 on
2 cores (bench/README.md, "Fixed cost per job").

The first job that finds no archive writes one as its JVM exits (`-XX:ArchiveClassesAtExit`, ~20 s
once, under a temporary name that `adopt` renames once the JVM has exited cleanly); later jobs map it
(`-XX:SharedArchiveFile`). The archive is keyed by what the JVM checks it against (the java binary,
Spark's version, the driver's extra class path), and the JVM ignores one that does not match; its
warning is silenced because unified logging writes to stdout, which `lakerec info --json` owns.
Classes of `spark.jars` (Delta) come through Spark's own class loader and are not archived."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from lakerec.config import Conf

QUIET = "-Xlog:cds*=off"
ARCHIVE_GLOB = "lakerec-driver-*.jsa"


def _java() -> Path | None:
    """The java binary spark-submit launches: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else (shutil.which("java") and Path(shutil.which("java")))
    return found.resolve() if found and found.exists() else None


def archive_path(conf: Conf, extra_class_path: str = "") -> Path | None:
    """Where this machine's archive for this JVM and class path lives; None when sharing is off or
    there is no java to key it by."""
    if not conf.settings.spark.class_data_sharing:
        return None
    java = _java()
    if java is None:
        return None
    import pyspark
    stat = java.stat()
    key = "\0".join([str(java), str(stat.st_size), str(int(stat.st_mtime)), pyspark.__version__, extra_class_path])
    return conf.cache_dir / "jvm" / ARCHIVE_GLOB.replace("*", hashlib.sha256(key.encode()).hexdigest()[:16])


def use_options(archive: Path | None) -> list[str]:
    """JVM options that map the archive when it exists (none otherwise); the archive is touched, as
    `lakerec maintain` deletes the ones unused for a while."""
    try:
        os.utime(archive)
    except (TypeError, OSError):         # no archive (None, or not written yet)
        return []
    return [f"-XX:SharedArchiveFile={archive}", QUIET]


def dump_options(archive: Path | None) -> tuple[list[str], Path | None]:
    """(JVM options, temporary file) that make this JVM write the archive as it exits, when there is
    none yet; stale temporary files of processes gone are removed first."""
    if archive is None or archive.exists():
        return [], None
    archive.parent.mkdir(parents=True, exist_ok=True)
    for stale in archive.parent.glob(f"{archive.stem}.*.tmp"):
        pid = stale.suffixes[-2].lstrip(".")
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            stale.unlink(missing_ok=True)
    tmp = archive.with_name(f"{archive.stem}.{os.getpid()}.tmp")
    return [f"-XX:ArchiveClassesAtExit={tmp}", QUIET], tmp


def adopt(tmp: Path, archive: Path, clean_exit: bool) -> None:
    """After the JVM has exited: the archive it wrote becomes the machine's (atomically), unless it
    exited uncleanly (a half-written file is dropped)."""
    if clean_exit and tmp.exists() and tmp.stat().st_size > 0:
        os.replace(tmp, archive)
    else:
        tmp.unlink(missing_ok=True)
