"""Source tables: the canonical schema, reading through the conf column mapping, and the two
writers of demo/benchmark warehouses (MovieLens-100K, synthetic)."""
