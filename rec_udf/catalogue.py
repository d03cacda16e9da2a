"""The item catalogue as a small Parquet file (item_id, title, release_year, genres) in catalogue
order: saved with every model version (the items its ID embeddings and item matrix belong to) and
shipped in export bundles (explanation prompts name items by title)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("item_id", pa.int64()), ("title", pa.string()), ("release_year", pa.int32()),
                    ("genres", pa.list_(pa.string()))])


def write_catalogue(path: Path, items: Sequence[dict]) -> None:
    columns = {name: [item.get(name) for item in items] for name in SCHEMA.names}
    columns["genres"] = [list(g) if g is not None else None for g in columns["genres"]]
    pq.write_table(pa.Table.from_pydict(columns, schema=SCHEMA), str(path))


def read_catalogue(path: Path) -> list[dict]:
    return pq.read_table(str(path)).to_pylist()
