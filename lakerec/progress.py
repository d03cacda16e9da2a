"""Progress on long Spark work: a background thread logs the active stages every few seconds."""
from __future__ import annotations

import contextlib
import threading
import time

from lakerec import logs

log = logs.get(__name__)


@contextlib.contextmanager
def spark_progress(spark, label: str, every_s: float = 15.0):
    sc = spark.sparkContext
    stop = threading.Event()
    start = time.time()

    def report():
        while not stop.wait(every_s):
            tracker = sc.statusTracker()
            parts = []
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info:
                    parts.append(f"stage {stage_id}: {info.numCompletedTasks}/{info.numTasks} tasks")
            log.info(f"[{label}] {time.time() - start:.0f}s " + ("; ".join(parts) or "working"))

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
