"""The LakeRec logger. Every module logs under `lakerec.<its module>` (`logs.get(__name__)`), at INFO
for progress; nothing is printed until `configure` (called once by the CLI and by the bench
scripts) sends those records to stderr as bare lines, each already prefixed with its stage
(`[train] ...`). Library users keep control: without `configure`, LakeRec's INFO records go wherever
their own logging setup sends them."""
from __future__ import annotations

import logging
import sys

ROOT = "lakerec"


def get(name: str) -> logging.Logger:
    """The logger for a module: `lakerec.*` names as they are, others (rec_udf, model_export, jobs)
    under `lakerec.` so that one `configure` covers them."""
    return logging.getLogger(name if name == ROOT or name.startswith(ROOT + ".") else f"{ROOT}.{name}")


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the record (pytest and Airflow swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(level: int = logging.INFO) -> None:
    """Send LakeRec's records at `level` and above to stderr, one bare line each; idempotent."""
    root = logging.getLogger(ROOT)
    if not any(isinstance(handler, _Stderr) for handler in root.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
