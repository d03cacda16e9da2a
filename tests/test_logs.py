"""The LakeRec logger: one configure call routes every module's progress, lakerec or not, to
stderr as bare lines, once."""
import logging

from lakerec import logs


def test_configure_routes_every_module_to_stderr_once(capsys):
    before = list(logging.getLogger(logs.ROOT).handlers)
    try:
        logs.configure()
        logs.configure()                                   # idempotent: one handler, one line per record
        logs.get("lakerec.training").info("[train] one")
        logs.get("model_export.export").info("[export] two")
        logs.get("lakerec.runs").debug("not at INFO")
        err = capsys.readouterr().err
        assert err.splitlines() == ["[train] one", "[export] two"]
        assert logs.get("rec_udf.recommender").name == "lakerec.rec_udf.recommender"
    finally:
        logging.getLogger(logs.ROOT).handlers[:] = before
