"""Spark session settings: Delta jars from the local folder when complete, packages otherwise."""
from lakerec.config import load_conf
from lakerec.jars import COMPLETE_MARK
from lakerec.spark import DELTA_CATALOG, DELTA_EXTENSION, session_config


def test_local_jar_folder_when_complete_else_maven_coordinates(tmp_path):
    folder = tmp_path / "jars"
    conf = load_conf(None, [f"spark.delta_jars_dir={folder}", f"warehouse_root={tmp_path}/wh"])
    settings = session_config(conf)
    assert settings["spark.jars.packages"] == "io.delta:delta-spark_4.2_2.13:4.4.0"
    assert "spark.jars" not in settings

    folder.mkdir()
    (folder / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    assert "spark.jars" not in session_config(conf)          # incomplete download: not used
    (folder / COMPLETE_MARK).write_text("done")
    settings = session_config(conf)
    assert settings["spark.jars"].endswith("delta-spark_4.2_2.13-4.4.0.jar")
    assert "spark.jars.packages" not in settings


def test_delta_catalog_hive_metastore_and_overrides(tmp_path):
    conf = load_conf(None, [f"warehouse_root={tmp_path}/wh", "spark.config.spark.sql.shuffle.partitions=3"])
    settings = session_config(conf)
    assert settings["spark.sql.extensions"] == DELTA_EXTENSION
    assert settings["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert settings["spark.sql.catalogImplementation"] == "hive"
    assert f"databaseName={tmp_path}/wh/metastore_db" in settings["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert settings["spark.sql.warehouse.dir"] == f"{tmp_path}/wh/tables"
    assert settings["spark.sql.shuffle.partitions"] == "3"
    no_hive = session_config(conf.with_overrides({"spark.hive_catalog": False}))
    assert "spark.sql.catalogImplementation" not in no_hive


def test_submit_arguments_carry_the_session_settings_and_the_python(tmp_path):
    """What `lakerec submit-args` gives spark-submit (the Airflow DAGs) is the session builder's own
    settings plus the interpreter of the driver and executors; the master stays the scheduler's."""
    import json
    import sys

    from jobs import submit
    from jobs.cli import main

    conf = load_conf(None, [f"warehouse_root={tmp_path}/wh", "spark.config.spark.sql.shuffle.partitions=3"])
    args = submit.arguments(conf)
    assert args["application"].endswith("jobs/cli.py") and args["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert {k: v for k, v in args["conf"].items() if k in session_config(conf)} == session_config(conf)
    assert args["conf"]["spark.pyspark.python"] == args["conf"]["spark.pyspark.driver.python"] == sys.executable
    assert not any("master" in key for key in args["conf"])
    elsewhere = submit.arguments(conf.with_overrides({"spark.python": "/opt/lakerec/bin/python"}))
    assert elsewhere["conf"]["spark.pyspark.python"] == "/opt/lakerec/bin/python"

    conf_file = tmp_path / "lakerec.yaml"
    conf_file.write_text(f"warehouse_root: {tmp_path}/wh\nspark: {{config: {{spark.sql.shuffle.partitions: 3}}}}\n")
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["submit-args", "--json", "--conf", str(conf_file)]) == 0
    assert json.loads(out.getvalue()) == submit.arguments(load_conf(conf_file))


def test_an_orphaned_jvm_shutting_down_is_waited_for_and_a_live_holder_is_not(tmp_path, monkeypatch):
    """A JVM whose driver has gone (a killed job) still holds the embedded metastore's lock while it
    shuts down: the next job waits for the lock to go rather than failing; a holder that stays is
    reported. The holders here are real: orphaned processes holding Derby's POSIX lock."""
    import os
    import subprocess
    import sys

    import pytest

    from lakerec import metastore
    from lakerec.errors import ConfigError
    conf = load_conf(None, [f"warehouse_root={tmp_path}/wh"])
    lock = metastore.embedded_metastore(conf) / "dbex.lck"
    lock.parent.mkdir(parents=True)

    def orphan_holding_the_lock(seconds):
        hold = (f"import fcntl, os, sys, time; fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT); "
                f"fcntl.lockf(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep({seconds})")
        # started by a shell that exits at once: its parent gone, as a killed job's JVM
        out = subprocess.Popen(["sh", "-c", f"{sys.executable} -c \"{hold}\" & echo $!"], stdout=subprocess.PIPE, text=True)
        pid = int(out.stdout.readline())
        assert out.stdout.readline().strip() == "held"
        return pid

    monkeypatch.setattr(metastore, "_orphaned", lambda pid: True)   # whoever adopted it here (init, a subreaper)
    monkeypatch.setattr(metastore, "ORPHAN_WAIT_S", 10)
    exiting = orphan_holding_the_lock(1)
    assert metastore.metastore_holder(lock.parent) == exiting
    metastore.check_metastore_free(conf)                              # returns once the lock is let go
    assert metastore.metastore_holder(lock.parent) is None

    staying = orphan_holding_the_lock(30)
    monkeypatch.setattr(metastore, "ORPHAN_WAIT_S", 0.5)
    try:
        with pytest.raises(ConfigError, match=f"is in use by pid {staying}"):
            metastore.check_metastore_free(conf)
    finally:
        os.kill(staying, 9)


def test_class_data_sharing_maps_an_archive_once_written_and_drops_a_half_written_one(tmp_path):
    """The first JVM writes the class archive under a name of its own; it becomes the machine's only
    after a clean exit; later launches map it; a temporary file of a process gone is removed."""
    import os

    import pytest

    from lakerec import class_sharing
    if class_sharing._java() is None:
        pytest.skip("no java on this machine")
    conf = load_conf(None, [f"warehouse_root={tmp_path}/wh", f"cache_dir={tmp_path}/cache"])
    archive = class_sharing.archive_path(conf)
    assert archive.parent == tmp_path / "cache" / "jvm"
    assert class_sharing.archive_path(conf, "/opt/postgresql.jar") != archive     # keyed by the class path

    stale = archive.with_name(f"{archive.stem}.999999999.tmp")
    archive.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    options, pending = class_sharing.jvm_options(conf)
    assert options[0] == f"-XX:ArchiveClassesAtExit={pending.tmp}" and pending.archive == archive
    assert pending.tmp.name == f"{archive.stem}.{os.getpid()}.tmp" and not stale.exists()
    assert not any("SharedArchiveFile" in o for o in options)     # never both: JDK 17 refuses to start

    pending.tmp.write_bytes(b"cut short")
    class_sharing.adopt(pending, clean_exit=False)
    assert not pending.tmp.exists() and not archive.exists()
    pending.tmp.write_bytes(b"classes")
    class_sharing.adopt(pending, clean_exit=True)
    assert archive.read_bytes() == b"classes" and not pending.tmp.exists()
    os.utime(archive, (0, 0))
    options, pending = class_sharing.jvm_options(conf)
    assert options[0] == f"-XX:SharedArchiveFile={archive}" and pending is None
    assert archive.stat().st_mtime > 0                              # touched: in use, kept by `lakerec maintain`
    assert "SharedArchiveFile" not in session_config(conf)["spark.driver.extraJavaOptions"]   # submit-args: never
    assert class_sharing.jvm_options(conf.with_overrides({"spark.class_data_sharing": False})) == ([], None)
