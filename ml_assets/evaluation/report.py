"""The evaluation report: gate table, metrics beside the champion's, slices, fairness, plots."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets import markdown
from ml_assets.evaluation.evidence import Evaluation, ScoringCost
from ml_assets.evaluation.gates import GateDecision


def gate_table(decisions: dict[str, GateDecision], severities: dict[str, str]) -> pd.DataFrame:
    """One row per gate: decision, headline value, threshold, champion's value and why."""
    return pd.DataFrame(
        [
            {
                "gate": name,
                "decision": "pass"
                if d.passed
                else ("block" if severities[name] == "ERROR" else "warn"),
                "severity": severities[name],
                "value": round(d.value, 5),
                "threshold": round(d.threshold, 5),
                "champion": None if d.reference is None else round(d.reference, 5),
                "reason": d.reason,
            }
            for name, d in decisions.items()
        ]
    )


def _sections(
    evaluation: Evaluation, decisions: dict[str, GateDecision], severities
) -> list[tuple]:
    """(title, table) pairs shared by the markdown and HTML renderings."""
    cand, champ = evaluation.candidate, evaluation.champion
    metrics = pd.DataFrame(
        [
            {
                "metric": name,
                "candidate": round(value, 5),
                "champion": round(champ.metrics[name], 5) if champ else None,
            }
            for name, value in cand.metrics.items()
        ]
    )
    fairness = pd.DataFrame(
        [
            {
                "column": column,
                "model": who,
                "demographic_parity_difference": round(result.demographic_parity_difference, 4),
                "equalized_odds_difference": round(result.equalized_odds_difference, 4),
            }
            for who, side in (("candidate", cand), ("champion", champ))
            if side
            for column, result in side.fairness.items()
        ]
    )
    groups = pd.DataFrame(
        [
            {"column": column, **group}
            for column, result in cand.fairness.items()
            for group in result.groups
        ]
    )
    curve = cand.calibration
    calibration = pd.DataFrame(
        {
            "mean score": curve.bin_mean_score,
            "default rate": curve.bin_positive_rate,
            "rows": curve.bin_rows,
        }
    )
    comparison = evaluation.comparison
    significance = (
        pd.Series(comparison.bootstrap.model_dump())
        .rename_axis("bootstrap")
        .reset_index(name="value")
        if comparison
        else pd.DataFrame([{"note": "no champion: nothing to compare"}])
    )
    mcnemar = pd.DataFrame([comparison.mcnemar.model_dump()]) if comparison else pd.DataFrame()
    columns = ["kind", "name", "rows", "failures", "passed", "detail"]
    behaviour = pd.DataFrame(
        [r.model_dump(include=set(columns)) for r in evaluation.behaviour or []], columns=columns
    )
    base = evaluation.baselines
    baselines = (
        pd.DataFrame(
            [
                {"model": "candidate", **{k: cand.metrics[k] for k in BASELINE_METRICS}},
                {"model": "base-rate predictor", **{k: base.prior[k] for k in BASELINE_METRICS}},
                {
                    "model": f"logistic regression ({base.logistic_train_rows} train rows)",
                    **{k: base.logistic_regression[k] for k in BASELINE_METRICS},
                },
            ]
        ).round(4)
        if base
        else pd.DataFrame([{"note": "no baselines in this evaluation"}])
    )
    op = evaluation.operational
    costs = [("candidate", op), ("champion", op.champion)]
    operational = pd.DataFrame(
        [
            {"model": name}
            | (
                {"note": "no champion measured"}
                if cost is None
                else {field: getattr(cost, field) for field in ScoringCost.model_fields}
            )
            for name, cost in costs
        ]
    )
    return [
        ("Gates", gate_table(decisions, severities)),
        ("Metrics on the test rows", metrics),
        ("Baselines on the same test rows", baselines),
        ("Slices (ROC AUC)", pd.DataFrame([s.model_dump() for s in evaluation.slices])),
        ("Fairness", fairness),
        ("Fairness by group (candidate)", groups),
        (f"Calibration (ECE {curve.ece:.4f}, Brier {curve.brier:.4f})", calibration),
        ("Champion vs challenger: paired bootstrap of the AUC difference", significance),
        ("Champion vs challenger: McNemar's exact test at the decision threshold", mcnemar),
        (
            f"Operational (CPU time of the scoring thread, best of {op.rounds} round(s) of "
            f"{op.single_row_requests} single-row requests and a {op.batch_rows:,}-row batch; "
            f"scoring process peak {op.peak_rss_mb:.0f} MiB)",
            operational,
        ),
        ("Behaviour tests", behaviour),
        (
            "Training batches flagged by WARN data gates (trained on, shifted)",
            pd.DataFrame(
                [
                    {"batch": day, "flagged by": reason}
                    for day, reasons in sorted(evaluation.flagged_batches.items())
                    for reason in reasons
                ]
                or [{"note": "no batch of the training window was flagged"}]
            ),
        ),
        (
            "Reproducibility",
            pd.DataFrame([evaluation.reproducibility.model_dump()]).T.reset_index(),
        ),
    ]


BASELINE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


def _header(evaluation: Evaluation, generated_at: str, run_url: str | None) -> list[str]:
    cand, champ = evaluation.candidate, evaluation.champion
    return [
        f"model {evaluation.model} v{cand.version} (MLflow run {cell(cand.run_id)})",
        f"test rows {evaluation.test_rows:,}, data version {evaluation.data_version}, "
        f"decision threshold {evaluation.decision_threshold:.4g} ({evaluation.threshold_rule})",
        f"champion (production) v{champ.version}" if champ else "champion: none (–)",
        f"generated {generated_at}" + (f"; MLflow run: {run_url}" if run_url else ""),
    ]


def cell(value: Any) -> str:
    """A table cell as a person reads it: 4 significant digits, thousands separated, "–" for
    a value that does not exist (no champion, say), pass/fail for yes/no."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "pass" if value else "fail"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def render_markdown(
    evaluation: Evaluation,
    decisions: dict[str, GateDecision],
    severities: dict[str, str],
    *,
    generated_at: str,
    run_url: str | None = None,
) -> str:
    lines = [f"# Evaluation of {evaluation.model} v{evaluation.candidate.version}", ""]
    lines += [f"- {line}" for line in _header(evaluation, generated_at, run_url)]
    for title, table in _sections(evaluation, decisions, severities):
        body = markdown.table(table.map(cell))
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"


def render_plots(
    y_true: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray | None,
    evaluation: Evaluation,
    out_dir: Path,
) -> dict[str, Path]:
    """ROC curves and the calibration curve as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, scores in (("candidate", candidate), ("champion", champion)):
        if scores is None:
            continue
        fpr, tpr, _ = roc_curve(y_true, scores)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    paths["roc"] = out_dir / "roc.png"
    fig.savefig(paths["roc"], dpi=90, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label in ("candidate", "champion"):
        side = getattr(evaluation, label)
        if not side:
            continue
        curve = side.calibration
        ax.plot(curve.bin_mean_score, curve.bin_positive_rate, marker="o", label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(
        xlabel="mean predicted default risk", ylabel="observed default rate", title="Calibration"
    )
    ax.legend(loc="upper left")
    paths["calibration"] = out_dir / "calibration.png"
    fig.savefig(paths["calibration"], dpi=90, bbox_inches="tight")
    plt.close(fig)
    return paths


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}
td,th{border:1px solid #d8d8d8;padding:3px 8px;vertical-align:top}
th{background:#f4f4f4;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.missing{color:#999;text-align:center}
.pass{background:#e6f4ea;color:#137333;font-weight:600}
.block,.fail{background:#fce8e6;color:#a50e0e;font-weight:600}
.warn{background:#fef7e0;color:#8a5a00;font-weight:600}
img{max-width:49%;margin:.3em 0}
"""
_VERDICTS = {"pass", "block", "fail", "warn"}


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for record in table.itertuples(index=False):
        cells = []
        for value in record:
            text = cell(value)
            if text == "–":
                css = "missing"
            elif text in _VERDICTS:
                css = text
            elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
                value, bool | np.bool_
            ):
                css = "num"
            else:
                css = ""
            cells.append(f"<td class='{css}'>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(
    evaluation: Evaluation,
    decisions: dict[str, GateDecision],
    severities: dict[str, str],
    plots: dict[str, Path],
    *,
    generated_at: str,
    run_url: str | None = None,
) -> str:
    """A self-contained, styled HTML page: the same tables, plots embedded."""
    title = f"Evaluation of {evaluation.model} v{evaluation.candidate.version}"
    header = [html.escape(line) for line in _header(evaluation, generated_at, None)]
    if run_url:
        header.append(f"<a href='{html.escape(run_url)}'>open the MLflow run</a>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><ul>",
        *[f"<li>{line}</li>" for line in header],
        "</ul>",
    ]
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<img alt='{name}' src='data:image/png;base64,{data}'>")
    for title_, table in _sections(evaluation, decisions, severities):
        parts.append(f"<h2>{html.escape(title_)}</h2>")
        parts.append(_html_table(table) if not table.empty else "<p>(none)</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
