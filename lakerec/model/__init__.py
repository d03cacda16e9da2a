"""Model and training code (torch): the ID model (SASRec), and later the LM with LoRA, masking and
losses. Imported by jobs (training) and model_export; never by rec_udf."""
