"""Spark entry points (`lakerec <job>`), thin: read conf, build the session, call library code,
write tables, report counts. The Airflow DAGs that schedule them live in airflow/dags/ (docs/airflow.md)."""
