"""How executors get the bundle (`score.ship`): `archive` ships it with SparkContext.addArchive,
unpacked once per executor (by path, never as bytes in a closure or broadcast); `shared` names a
directory every executor can read."""
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


def ship(spark, conf: Conf, bundle_dir: Path) -> BundleRef:
    """The reference executors open the bundle by (the settings schema admits archive or shared)."""
    sha = bundle_format.sha256(bundle_dir / bundle_format.MANIFEST)
    if conf.settings.score.ship == "shared":
        return BundleRef(sha, path=str(bundle_dir))
    path = archive(bundle_dir, sha, conf.cache_dir / "shipping")
    sc = spark.sparkContext
    if not any(uri.endswith("/" + path.name) for uri in sc.listArchives):
        sc.addArchive(str(path))
    return BundleRef(sha, archive=path.name)
