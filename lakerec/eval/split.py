"""The leave-one-out protocol: per user, ordered by (event_time, tie order, item_id), the last
interaction is the test item, the second-last the validation item, the rest is training data. Users
with fewer than 3 interactions keep everything in training and are not evaluated. MovieLens has many
same-second ratings (half of ML-100K's consecutive events tie): the tie order
(`rec_udf.textualizer.tie_order`, a hash of user and item) makes the split deterministic without
ordering a session by item id, which an ID model would learn and the test would reward."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window, functions as F

from lakerec.sources.schema import tie_order_column

TRAIN, VALID, TEST = "train", "valid", "test"


def leave_one_out(interactions: DataFrame) -> DataFrame:
    """interactions + a `split` column (train / valid / test)."""
    newest_first = Window.partitionBy("user_id").orderBy(F.col("event_time").desc(), tie_order_column().desc(),
                                                         F.col("item_id").desc())
    per_user = Window.partitionBy("user_id")
    position = F.row_number().over(newest_first)
    count = F.count(F.lit(1)).over(per_user)
    split = (F.when(count < 3, F.lit(TRAIN)).when(position == 1, F.lit(TEST))
             .when(position == 2, F.lit(VALID)).otherwise(F.lit(TRAIN)))
    return interactions.withColumn("split", split)
