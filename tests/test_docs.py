"""The table documentation stays in step with the code that writes the tables."""
from pathlib import Path

from lakerec.eval.report import MODEL_METRICS_COLUMNS_DOC, MODEL_METRICS_SCHEMA
from lakerec.prompts import PROMPTS_COLUMNS_DOC
from lakerec.runs import RUNS_COLUMNS_DOC, RUNS_SCHEMA
from lakerec.validate import QUARANTINE_COLUMNS_DOC
from lakerec.ab import ASSIGNMENTS_COLUMNS_DOC
from lakerec.scoring.output import RECS_COLUMNS_DOC

DOC = (Path(__file__).resolve().parents[1] / "docs" / "tables.md").read_text()


def test_every_documented_column_is_in_docs_tables_md():
    for docs in (PROMPTS_COLUMNS_DOC, QUARANTINE_COLUMNS_DOC, RUNS_COLUMNS_DOC, MODEL_METRICS_COLUMNS_DOC,
                 RECS_COLUMNS_DOC, ASSIGNMENTS_COLUMNS_DOC):
        for column in docs:
            assert f"| {column}" in DOC or f", {column} |" in DOC, column


def test_runs_schema_and_docs_agree():
    schema_columns = [part.strip().split()[0] for part in RUNS_SCHEMA.split(",")]
    assert schema_columns == list(RUNS_COLUMNS_DOC)


def test_model_metrics_schema_and_docs_agree():
    schema_columns = [part.strip().split()[0] for part in MODEL_METRICS_SCHEMA.split(",")]
    assert schema_columns == list(MODEL_METRICS_COLUMNS_DOC)
