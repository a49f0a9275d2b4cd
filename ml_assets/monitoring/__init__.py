"""The monitoring stage: drift of new batches and the hygiene of every gate."""
