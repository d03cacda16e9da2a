"""Baselines measured on the same split as the LM: most-popular and Spark MLlib ALS."""
from __future__ import annotations

import numpy as np

from lakerec.eval.protocol import ScoreFn, SplitData


def most_popular(data: SplitData) -> ScoreFn:
    """Every user gets the items ranked by their number of training interactions."""
    counts = np.zeros(data.n_items, dtype=np.float64)
    for items in data.train.values():
        np.add.at(counts, items, 1.0)
    return lambda users: np.broadcast_to(counts, (len(users), data.n_items))


def als(spark, data: SplitData, rank: int = 64, max_iter: int = 15, reg: float = 0.05,
        alpha: float = 10.0, seed: int = 0) -> ScoreFn:
    """Implicit-feedback ALS (Spark MLlib) on the training interactions; scores = U V^T."""
    from pyspark.ml.recommendation import ALS

    pairs = [(int(user), int(item), 1.0) for user, items in data.train.items() for item in set(items.tolist())]
    train = spark.createDataFrame(pairs, "user int, item int, rating float")
    model = ALS(rank=rank, maxIter=max_iter, regParam=reg, alpha=alpha, implicitPrefs=True, seed=seed,
                userCol="user", itemCol="item", ratingCol="rating", coldStartStrategy="drop").fit(train)
    users = {r.id: np.array(r.features) for r in model.userFactors.collect()}
    items = np.zeros((data.n_items, rank))
    for r in model.itemFactors.collect():
        items[r.id] = r.features
    zeros = np.zeros(rank)
    return lambda batch: np.stack([users.get(int(u), zeros) for u in batch]) @ items.T
