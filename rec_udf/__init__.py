"""Everything that runs on a Spark executor. Depends on the standard library, numpy, pandas,
pyarrow, tokenizers and onnxruntime only: never on torch, never on the driver-side `lakerec`."""
