"""The data stage: batch files, the data contract, the per-batch data gates, the verdict ledger."""
