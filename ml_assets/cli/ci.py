"""`make ci`: the asset checks of a pull request, on an ephemeral instance.

    python -m ml_assets.cli.ci                               # champion from the configured registry
    python -m ml_assets.cli.ci --champion-model path/to/model  # or from an MLflow model folder
    python -m ml_assets.cli.ci --workdir ci-run                # keep the run's files (reports)

The pipeline runs as `make run` does, but on a scratch copy of the configuration: a new Dagster
instance and a new MLflow store in a temporary folder, `validation.depth: sample` (the sampled
data gates, as CI affords), and the desired state written there too. It trains and evaluates a
candidate against the current production champion, imported into the scratch registry from the
configured one (or from an MLflow model folder). Nothing is registered in the real registry and
no alias of it moves; the user's batch folders are only read. A markdown summary of every gate
is printed and appended to $GITHUB_STEP_SUMMARY when that is set.

Exit codes as `make run`'s: 0 every blocking gate passed, 1 a gate blocked, 2 an error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ml_assets.settings import CONFIG_ENV_VAR, PROJECT_ROOT, load_settings

SUMMARY_ENV_VAR = "GITHUB_STEP_SUMMARY"


def scratch_config(settings, workdir: Path) -> Path:
    """pipeline.yaml for the CI run: the user's, with sampled validation and every store, report
    and desired-state file under `workdir`; the batch folders are the user's, read only."""
    import yaml

    raw = yaml.safe_load(settings.source.read_text())
    dataset = raw["dataset"]
    dataset["features_dir"] = str(settings.dataset.features_dir)
    if settings.dataset.labels_dir is not None:
        dataset["labels_dir"] = str(settings.dataset.labels_dir)
    if settings.dataset.behaviour_cases is not None:
        dataset["behaviour_cases"] = str(settings.dataset.behaviour_cases)
    raw.setdefault("validation", {})["depth"] = "sample"
    raw["storage"] = {"data_dir": str(workdir / "data"), "mlflow_dir": str(workdir / "mlflow")}
    state = raw.setdefault("delivery", {}).setdefault("desired_state", {})
    state.update(folder=str(workdir / "deploy"), git_commit=False)
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def champion_source(
    settings, model_folder: Path | None, workdir: Path
) -> tuple[Path | None, dict, str]:
    """The production champion as a local MLflow model folder (downloaded into `workdir`), its
    version tags and where it came from; (None, {}, reason) when there is none."""
    if model_folder is not None:
        folder = model_folder.resolve()
        if not (folder / "MLmodel").is_file():
            raise FileNotFoundError(
                f"--champion-model {folder} is not an MLflow model folder (no MLmodel file)"
            )
        return folder, {}, f"model folder {folder}"
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from ml_assets.training.registry import quiet_downloads, version_for_alias

    uri = settings.mlflow_tracking_uri
    name, alias = settings.training.registered_model_name, settings.delivery.production_alias
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None, {}, f"no registry at {uri}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = version_for_alias(client, name, alias)
    if version is None:
        return None, {}, f"no version of {name} holds @{alias} in {uri}"
    target = workdir / "champion"
    target.mkdir()
    with quiet_downloads():
        location = client.get_model_version_download_uri(name, version.version)
        folder = Path(download_artifacts(artifact_uri=location, dst_path=str(target)))
    return folder, dict(version.tags), f"{name} v{version.version}@{alias} in {uri}"


def import_champion(settings, folder: Path, tags: dict, origin: str) -> str:
    """Register the champion's model folder in the scratch registry under production's alias;
    its version number there."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow_tracking_uri
    name, alias = settings.training.registered_model_name, settings.delivery.production_alias
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "ci-champion", artifact_location=settings.mlflow_artifact_location
    )
    run = client.create_run(experiment, run_name="champion", tags={"ci_champion_from": origin})
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
    client.set_terminated(run.info.run_id)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/model",
        run_id=run.info.run_id,
        tags={**tags, "ci_champion_from": origin},
    )
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _shortened(text: str, limit: int = 200) -> str:
    """At most `limit` characters, saying so when cut (the whole text is in the run's log)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_summary(report, settings, champion: str, workdir: Path | None) -> str:
    """Every gate of the run as a markdown table, with the outcome first."""
    from ml_assets.metadata import markdown_table

    outcome = {
        0: "every blocking gate passed",
        1: f"blocked by {', '.join(sorted(set(report.blocked)))}",
        2: "an error stopped the run",
    }[report.exit_code]
    icon = {0: "✅", 1: "❌", 2: "⚠️"}[report.exit_code]
    lines = [f"## ml_assets CI: {icon} exit {report.exit_code}, {outcome}", ""]
    candidate = report.materialized.get("candidate_model")
    if candidate:
        lines.append(
            f"- candidate: {settings.training.registered_model_name} "
            f"v{candidate['model_version']} trained on "
            f"{report.materialized['training_dataset']['rows']} rows"
        )
    lines.append(f"- champion: {champion}")
    lines.append("- validation depth: sample (the full gates run on the nightly schedule)")
    rows = []
    for name, (passed, meta, description) in report.checks.items():
        failed_days = meta.get("failed_days")
        rows.append(
            {
                "gate": name,
                "verdict": "PASS" if passed else "FAIL",
                "blocks": "yes" if name in report.blocked else "no",
                "failed batches": failed_days if failed_days not in (None, "none") else "",
                "evidence": _shortened(" ".join(description.split())),
            }
        )
    if rows:
        lines += ["", markdown_table(rows, max_rows=len(rows)).value, ""]
    for error in report.errors:
        lines.append(f"- **error** {error}")
    if workdir is not None:
        lines.append(f"- reports and quarantine: `{workdir}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.cli.ci", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--champion-model",
        type=Path,
        default=None,
        help="an MLflow model folder to judge against (default: production's version in the "
        "configured registry)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the run's instance, store, reports and quarantine here (default: a "
        "temporary folder, removed afterwards)",
    )
    args = parser.parse_args(argv)
    from ml_assets.cli import run
    from ml_assets.cli.environment import scoped_environment
    from ml_assets.data.batches import BatchFileError
    from ml_assets.settings import SettingsError

    keep = args.workdir is not None
    workdir = args.workdir.resolve() if keep else Path(tempfile.mkdtemp(prefix="ml_assets_ci_"))
    scratch_env = {CONFIG_ENV_VAR: None, "DAGSTER_HOME": None, "MLFLOW_TRACKING_URI": None}
    try:
        settings = load_settings()
        # Demo data is generated, as by `make run`, before the sample is drawn.
        run._prepare_batches(settings)
        workdir.mkdir(parents=True, exist_ok=True)
        if any(workdir.iterdir()):
            raise FileExistsError(f"--workdir {workdir} is not empty: CI starts from nothing")
        folder, tags, origin = champion_source(settings, args.champion_model, workdir)
        config = scratch_config(settings, workdir)
        home = workdir / "dagster_home"
        home.mkdir()
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        scratch_env.update({CONFIG_ENV_VAR: str(config), "DAGSTER_HOME": str(home)})
        with scoped_environment(scratch_env):
            scratch = load_settings()
            champion = (
                f"v{import_champion(scratch, folder, tags, origin)} here, from {origin}"
                if folder is not None
                else f"none ({origin}): the candidate is judged on its own"
            )
            report, *rest = run.execute_pipeline()
        print(run.summarise(report, *rest))
        summary = markdown_summary(report, scratch, champion, workdir if keep else None)
        print(summary)
        target = os.environ.get(SUMMARY_ENV_VAR)
        if target:
            with open(target, "a", encoding="utf-8") as sink:
                sink.write(summary)
        return report.exit_code
    except (SettingsError, BatchFileError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
