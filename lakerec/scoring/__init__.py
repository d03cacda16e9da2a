"""The scoring job's driver side: which bundle, how executors get it, which prompts, and the
recommendation tables it writes. The per-row work runs on executors in `rec_udf.scoring_udf`.

Order of work, so that nothing is half-written: resolve and verify the bundle, read the prompts at a
pinned Delta version, score every user (persisted), and only then replace the output slice and the
quarantine slice, each in one Delta commit.

  job.py            the job: prompts of a run date -> scored -> output and quarantine slices replaced
  bundle_choice.py  which model version a run scores with, its bundle verified on the driver
  shipping.py       how executors get the bundle (an archive Spark ships, or a shared directory)
  stage.py          the Spark stage: the prompts scored on executors, persisted, with its counters
  output.py         the recommendations tables: their rows, columns and the latest-run view
"""
