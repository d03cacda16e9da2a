"""The leave-one-out protocol: per user, ordered by (event_time, item_id), the last interaction is
the test item, the second-last the validation item, the rest is training data. Users with fewer
than 3 interactions keep everything in training and are not evaluated. The item_id tie-break makes
the split deterministic where timestamps tie (MovieLens has many same-second ratings)."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F

TRAIN, VALID, TEST = "train", "valid", "test"


def leave_one_out(interactions: DataFrame) -> DataFrame:
    """interactions + a `split` column (train / valid / test)."""
    newest_first = Window.partitionBy("user_id").orderBy(F.col("event_time").desc(), F.col("item_id").desc())
    per_user = Window.partitionBy("user_id")
    position = F.row_number().over(newest_first)
    count = F.count(F.lit(1)).over(per_user)
    split = (F.when(count < 3, F.lit(TRAIN)).when(position == 1, F.lit(TEST))
             .when(position == 2, F.lit(VALID)).otherwise(F.lit(TRAIN)))
    return interactions.withColumn("split", split)
