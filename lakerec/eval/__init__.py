"""Offline evaluation: ranking metrics and the leave-one-out protocol (numpy + Spark, no torch)."""
