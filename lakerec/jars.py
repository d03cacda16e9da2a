"""Delta Lake jars for Spark sessions on machines without Ivy access to a public repository.

`python -m lakerec.jars fetch` resolves the Delta coordinate from conf (spark.delta_package)
with Maven (`mvn dependency:copy-dependencies`) and keeps only the jars that pyspark does not
already ship, in `spark.delta_jars_dir`. The session builder puts that folder on `spark.jars`
when it is complete, and falls back to `spark.jars.packages` otherwise.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lakerec import logs
from lakerec.config import Conf, load_conf
from lakerec.errors import LakeRecError

COMPLETE_MARK = ".complete"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>lakerec</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies><dependency>
    <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
  </dependency></dependencies>
</project>
"""
_VERSIONED_JAR = re.compile(r"^(?P<base>.+?)-\d[\w.\-]*\.jar$")


def local_jars(conf: Conf) -> list[str]:
    """Jars in the configured folder, or [] when the folder is absent or incomplete."""
    folder = Path(conf.get("spark.delta_jars_dir") or "/nonexistent")
    if not (folder / COMPLETE_MARK).exists():
        return []
    return sorted(str(p) for p in folder.glob("*.jar"))


def _artifact_base(jar_name: str) -> str:
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("base") if match else jar_name


def _spark_shipped_bases() -> set[str]:
    import pyspark

    return {_artifact_base(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def fetch(conf: Conf) -> Path:
    """Download the Delta jars once; return the folder. Idempotent."""
    return fetch_package(conf.require("spark.delta_package"), Path(conf.require("spark.delta_jars_dir")))


def fetch_package(coordinate: str, folder: Path) -> Path:
    """Resolve a Maven coordinate and its runtime dependencies into folder, keeping only the jars
    pyspark does not already ship. Idempotent: a complete folder is reused."""
    if (folder / COMPLETE_MARK).exists():
        return folder
    group, artifact, version = coordinate.split(":")
    if not shutil.which("mvn"):
        raise LakeRecError("Maven (mvn) is not on PATH; install it or let Spark resolve "
                           f"{coordinate} through spark.jars.packages")
    logs.get(__name__).info(f"[lakerec setup] fetching {coordinate} and its dependencies with Maven into {folder}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(_POM.format(group=group, artifact=artifact, version=version))
        out = Path(tmp) / "jars"
        proc = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={out}",
             "-DincludeScope=runtime"],
            cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LakeRecError(f"mvn could not resolve {coordinate}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        # Spark already ships Hadoop, Parquet, Jackson, Scala...: keep its versions, add only the rest.
        shipped = _spark_shipped_bases()
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))   # one per process
        for jar in sorted(out.glob("*.jar")):
            if _artifact_base(jar.name) not in shipped:
                shutil.copy2(jar, staging / jar.name)
    (staging / COMPLETE_MARK).write_text(coordinate + "\n")
    if (folder / COMPLETE_MARK).exists():      # another process finished first: keep its folder
        shutil.rmtree(staging, ignore_errors=True)
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def main(argv: list[str]) -> int:
    if argv[:1] != ["fetch"]:
        print("usage: python -m lakerec.jars fetch [--conf FILE]", file=sys.stderr)
        return 2
    logs.configure()
    conf_path = argv[argv.index("--conf") + 1] if "--conf" in argv else None
    fetch(load_conf(conf_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
