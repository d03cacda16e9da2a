"""Run by scripts/check_dags.sh inside the Airflow environment: DagBag loads every DAG file without
import errors, and each DAG has the tasks, order and date parameter the docs promise."""
import sys

try:
    from airflow.dag_processing.dagbag import DagBag       # Airflow >= 3.1
except ImportError:
    from airflow.models.dagbag import DagBag

EXPECTED = {
    "lakerec_nightly": ["validate", "textualize", "score", "check_output"],
    "lakerec_weekly": ["train", "export", "promote_if_better", "maintain"],
}

bag = DagBag(dag_folder=sys.argv[1])            # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES
problems = [f"import error in {path}: {error}" for path, error in bag.import_errors.items()]
for dag_id, chain in EXPECTED.items():
    dag = bag.dags.get(dag_id)
    if dag is None:
        problems.append(f"{dag_id}: not found (found {sorted(bag.dags)})")
        continue
    if sorted(dag.task_ids) != sorted(chain):
        problems.append(f"{dag_id}: tasks {sorted(dag.task_ids)}, expected {sorted(chain)}")
        continue
    for upstream, downstream in zip(chain, chain[1:]):
        if downstream not in dag.get_task(upstream).downstream_task_ids:
            problems.append(f"{dag_id}: {upstream} does not run before {downstream}")
    for task in dag.tasks:
        args = getattr(task, "application_args", None) or getattr(task, "_application_args", None)
        if args is not None and "{{ ds }}" not in args:
            problems.append(f"{dag_id}.{task.task_id}: not parametrised by the logical date ({args})")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"DAGs OK: {', '.join(f'{d} ({len(EXPECTED[d])} tasks)' for d in EXPECTED)}")
