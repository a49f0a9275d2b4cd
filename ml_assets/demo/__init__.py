"""Real datasets shipped as daily batch generators, to run ml_assets on data no one here made.

Each module turns a public dataset into `YYYY-MM-DD.parquet` files that follow the data contract
of the README and comes with a matching config under `docs/examples/<name>/pipeline.yaml`.

* `breast_cancer`: scikit-learn's copy of the UCI Wisconsin Diagnostic Breast Cancer data,
  labels inside the batch (`labels_dir: null`).
"""
