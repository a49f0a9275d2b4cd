"""Dagster metadata shared by every stage: readable tables and the tags that explain a run."""

import dagster as dg
import pandas as pd

# Every run a sensor, schedule or `make run` requests says why, and on what evidence.
TRIGGER_TAG = "ml_assets/trigger"
EVIDENCE_TAG = "ml_assets/evidence"


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """A DataFrame as a markdown table for the UI (the first `max_rows` rows)."""
    if frame.empty:
        return dg.MetadataValue.md("(none)")
    return dg.MetadataValue.md(frame.head(max_rows).to_markdown(index=False))
