"""Upkeep of what LakeRec writes (`lakerec maintain`, the weekly DAG's last task):

- OPTIMIZE every LakeRec Delta table: the nightly slices, the run rows and the quarantine arrive as
  many small files; compaction keeps reads fast.
- VACUUM with `maintain.vacuum_retention_hours` (default 168, Delta's own safety minimum): removes
  data files no table version of that window needs, including the orphans a write killed before its
  commit leaves. Time travel (`VERSION AS OF`, the A/B readers) and Change Data Feed readers can go
  back that far and no further.
- Shipping archives (the bundle tars `lakerec score` builds under cache_dir/shipping) unused for
  `maintain.archive_retention_days` are deleted; scoring touches an archive each time it ships it.
  So are the driver JVM's class archives (cache_dir/jvm), touched by every job that maps one.

The source tables are the warehouse's, not LakeRec's: they are never touched."""
from __future__ import annotations

import time
from pathlib import Path

from lakerec import class_sharing
from lakerec.config import Conf
from lakerec.tables import describe, table_exists

SHIPPING_GLOB = "lakerec-bundle-*.tar"


def lakerec_tables(spark, conf: Conf) -> list[str]:
    """The Delta tables among conf `tables.*` that exist (views and source tables left out)."""
    out = []
    for name in dict.fromkeys((conf.get("tables") or {}).values()):
        if table_exists(spark, name) and (describe(spark, name).get("Provider") or "").lower() == "delta":
            out.append(name)
    return out


def _files(spark, name: str) -> tuple[int, int]:
    detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
    return int(detail.numFiles or 0), int(detail.sizeInBytes or 0)


def maintain_tables(spark, conf: Conf) -> dict[str, dict]:
    retention = float(conf.get("maintain.vacuum_retention_hours"))
    # VACUUM lists the table's files in spark.sql.sources.parallelPartitionDiscovery.parallelism tasks
    # (10,000 by default): ~30 s of scheduling per table on 2 cores. One task per core is plenty.
    spark.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                   str(conf.get("maintain.listing_tasks") or spark.sparkContext.defaultParallelism))
    report = {}
    for name in lakerec_tables(spark, conf):
        files_before, _ = _files(spark, name)
        spark.sql(f"OPTIMIZE {name}")
        vacuum = f"VACUUM {name} RETAIN {retention:g} HOURS"
        vacuumed = spark.sql(vacuum + " DRY RUN").count()      # the files it deletes (VACUUM names none)
        spark.sql(vacuum)
        files_after, size = _files(spark, name)
        report[name] = {"files_before": files_before, "files_after": files_after, "bytes": size,
                        "vacuumed_paths": vacuumed}
        print(f"[maintain] {name}: {files_before} -> {files_after} files ({size / 1e6:.1f} MB); vacuum "
              f"removed {vacuumed} paths older than {retention:g} h", flush=True)
    return report


def remove_old_archives(conf: Conf, now: float | None = None) -> list[str]:
    """Shipping archives and the JVM's class archives (lakerec/class_sharing.py: one per java and class
    path, left behind by a JDK or Spark upgrade) not used for `maintain.archive_retention_days`, and
    class archives a killed job left half-written."""
    days = float(conf.get("maintain.archive_retention_days"))
    cutoff = (now or time.time()) - days * 86400
    removed = []
    jvm = Path(conf.cache_dir, "jvm")
    kinds = {"shipping archive": Path(conf.cache_dir, "shipping").glob(SHIPPING_GLOB),
             "JVM class archive": jvm.glob(class_sharing.ARCHIVE_GLOB)}
    for kind, paths in kinds.items():
        for path in sorted(paths):
            if path.stat().st_mtime < cutoff:
                size = path.stat().st_size
                path.unlink()
                removed.append(path.name)
                print(f"[maintain] removed {kind} {path.name} ({size / 1e6:.0f} MB), unused for {days:g}+ days")
    return removed + (class_sharing.remove_stale(jvm) if jvm.is_dir() else [])
