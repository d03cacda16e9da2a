"""Model and training code (torch): the ID model (SASRec) and its text view, the LM with LoRA,
masking and losses, their trainers, the hybrid score and the explainer's driver side. Imported by
the training job and model_export; never by rec_udf (docs/architecture.md)."""
