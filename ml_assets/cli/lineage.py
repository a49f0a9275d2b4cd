"""`python -m ml_assets.lineage <version>`: a version's chain from its deployments back to data.

Prints the deployments and approvals (the audit log), the evaluation's gate verdicts, the MLflow
training run and model file hash, the code commit, and every training batch with its files'
content hashes. Exit 1 when the registry has no such version.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_assets.lineage", description=__doc__)
    parser.add_argument("version", help="the model version (its number in MLflow)")
    args = parser.parse_args(argv)
    from mlflow.exceptions import MlflowException

    from ml_assets.delivery.model_card import lineage, version_facts
    from ml_assets.resources import PipelineResource
    from ml_assets.training.registry import read_audit

    pipeline = PipelineResource()
    name = pipeline.settings.training.registered_model_name
    client = pipeline.mlflow_client()
    try:
        facts = version_facts(client, name, args.version, read_audit(pipeline.audit_dir, name))
    except MlflowException as error:
        print(f"error: {name} v{args.version}: {error.message}")
        return 1
    print(lineage(facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
