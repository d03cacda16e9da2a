"""Spark entry points (`lakerec <job>`), thin: read conf, build the session, call library code,
write tables, report counts. Airflow DAGs live in jobs/dags/."""
