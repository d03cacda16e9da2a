"""LakeRec: driver-side library shared by the Spark jobs (configuration, session, tables,
sources, validation, runs). Executor code lives in `rec_udf`, entry points in `jobs`."""
__version__ = "0.1.0"
