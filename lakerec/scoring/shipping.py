"""How executors get the bundle (`score.ship`): `archive` ships it with SparkContext.addArchive,
unpacked once per executor (by path, never as bytes in a closure or broadcast); `shared` names a
directory every executor can read; `auto` (the default) is shared under a local master, archive
on a cluster."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

from lakerec.config import Conf
from rec_udf import bundle as bundle_format
from rec_udf.scoring_udf import BundleRef


def archive(bundle_dir: Path, sha: str, shipping_dir: Path) -> Path:
    """The bundle as one uncompressed tar named by its manifest hash (built once, reused)."""
    path = shipping_dir / f"lakerec-bundle-{sha[:16]}.tar"
    try:
        os.utime(path)          # last use: `lakerec maintain` deletes archives unused for a while
        return path
    except FileNotFoundError:
        pass
    shipping_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for file in sorted(bundle_dir.rglob("*")):
            if file.is_file():
                tar.add(file, arcname=str(file.relative_to(bundle_dir)))
    tmp.rename(path)
    return path


def shipping_mode(conf: Conf, master: str) -> str:
    """`score.ship`, with auto resolved: shared when the executors run inside the driver's JVM on this
    machine (`local`, `local[N]`), archive for any cluster (`local-cluster` included: its executors are
    processes of their own, as on a real cluster)."""
    mode = conf.settings.score.ship
    if mode != "auto":
        return mode
    return "shared" if master == "local" or master.startswith("local[") else "archive"


def ship(spark, conf: Conf, bundle_dir: Path) -> BundleRef:
    """The reference executors open the bundle by."""
    sha = bundle_format.sha256(bundle_dir / bundle_format.MANIFEST)
    if shipping_mode(conf, spark.sparkContext.master) == "shared":
        return BundleRef(sha, path=str(bundle_dir))
    path = archive(bundle_dir, sha, conf.cache_dir / "shipping")
    sc = spark.sparkContext
    if not any(uri.endswith("/" + path.name) for uri in sc.listArchives):
        sc.addArchive(str(path))
    return BundleRef(sha, archive=path.name)
