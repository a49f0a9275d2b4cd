"""Seeded demo data: daily loan applications and their credit-default labels.

Generative story, per application (all draws vectorised with numpy):

* Who applies: age band (which places a latent age), sex (independent of everything else),
  region, channel (younger applicants go online more) and purpose.
* Finances: log income = age-band level + region + noise; a latent financial health h (slightly
  better with age) drives delinquencies (Poisson, fewer for high h), credit score (h, age,
  income, minus delinquencies, plus noise) and card utilization. Employment years grow with
  age (~2% missing); open accounts grow with age. Loan amount = income x a purpose-specific
  loan-to-income ratio; large loans more often take the 60-month term; debt-to-income rises
  for low h. Home ownership (RENT/MORTGAGE/OWN) depends on age and income.
* Label: defaulted ~ Bernoulli(sigmoid(logit)), where logit = b0 - credit score (strongest)
  + log debt-to-income + DTI x low-credit-score interaction + utilization + delinquencies
  + log loan-to-income + 60-month term + short employment + purpose (small_business, medical)
  + broker channel - home ownership (OWN, MORTGAGE) + a small young-age effect + N(0, 0.7)
  noise. `sex` never enters the logit. b0 puts the base default rate near 12%.

Every day draws from its own generator seeded by (seed, date), so one day can be regenerated
alone and the same arguments give byte-identical files. Scenario randomness comes from a
separate stream, so a scenario changes only what it says (e.g. label_noise keeps the features
of the stable day bit for bit).

Scenarios (applied to the days of the scenario window only; other days are stable):

* stable: nothing changes.
* covariate_drift: incomes 30% lower, credit scores 40 points lower, more broker applications
  and more small_business loans; the label model is unchanged.
* concept_drift: same features; the DTI effect doubles and the broker channel is much riskier.
* schema_corruption: credit_score renamed to fico_score, income written as strings "$52,300".
* value_corruption: ~30% of incomes null and loan_amount in thousands (below the contract min).
* label_noise: ~25% of labels flipped; features unchanged.
* leakage: delinquencies_2y derived from the label (defaulted rows 3..8, others mostly 0).

CLI: `python -m ml_assets.demo.simulate --days 120 --scenario covariate_drift`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCENARIOS: tuple[str, ...] = (
    "stable",
    "covariate_drift",
    "concept_drift",
    "schema_corruption",
    "value_corruption",
    "label_noise",
    "leakage",
)
FORMATS: tuple[str, ...] = ("parquet", "csv")

ID_COLUMN = "application_id"
TIMESTAMP_COLUMN = "application_ts"
TARGET_COLUMN = "defaulted"

HOME_OWNERSHIP = ("RENT", "MORTGAGE", "OWN")
PURPOSES = (
    "debt_consolidation",
    "credit_card",
    "home_improvement",
    "car",
    "medical",
    "small_business",
    "other",
)
REGIONS = ("north", "south", "east", "west", "central")
CHANNELS = ("online", "branch", "broker")
AGE_BANDS = ("18-25", "26-35", "36-50", "51-65", "65+")
SEXES = ("female", "male")

_AGE_BAND_P = np.array([0.13, 0.28, 0.32, 0.19, 0.08])
_AGE_LOW = np.array([18.0, 26.0, 36.0, 51.0, 66.0])
_AGE_HIGH = np.array([26.0, 36.0, 51.0, 66.0, 80.0])
# Median annual income by age band and multiplier by region.
_INCOME_MEDIAN = np.array([31_000.0, 52_000.0, 66_000.0, 63_000.0, 41_000.0])
_REGION_P = np.array([0.19, 0.22, 0.21, 0.18, 0.20])
_REGION_INCOME = np.array([1.00, 0.88, 1.12, 1.08, 0.95])
# Purpose mix and median loan-to-income ratio by purpose.
_PURPOSE_P = np.array([0.36, 0.20, 0.12, 0.11, 0.06, 0.07, 0.08])
_PURPOSE_P_DRIFT = np.array([0.30, 0.17, 0.10, 0.09, 0.06, 0.20, 0.08])
_PURPOSE_LTI = np.array([0.28, 0.14, 0.30, 0.38, 0.10, 0.55, 0.15])
_PURPOSE_RISK = np.array([0.05, -0.10, -0.15, -0.10, 0.45, 0.65, 0.10])
# Channel mix (online, branch, broker) for the youngest and the oldest applicants.
_CHANNEL_YOUNG = np.array([0.72, 0.16, 0.12])
_CHANNEL_OLD = np.array([0.30, 0.52, 0.18])
_CHANNEL_BROKER_SHIFT = 0.25

_N_NORMAL = 10
_N_UNIFORM = 9


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(u: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Index of the category each uniform draw falls in; `probs` is (k,) or (n, k)."""
    cum = np.cumsum(probs, axis=-1)
    cum = cum / cum[..., -1:]
    if cum.ndim == 1:
        index = np.searchsorted(cum, u, side="right")
    else:
        index = (u[:, None] >= cum).sum(axis=1)
    return np.minimum(index, probs.shape[-1] - 1)


def _label_logit(
    f: dict[str, np.ndarray], *, dti_weight: float = 1.0, broker_weight: float = 0.25
) -> np.ndarray:
    """The default logit without noise; `sex` is deliberately absent."""
    cs_z = (f["credit_score"] - 680.0) / 60.0
    low_cs = np.clip((660.0 - f["credit_score"]) / 60.0, 0.0, None)
    log_dti = np.log(np.maximum(f["debt_to_income"], 0.02) / 0.20)
    emp = f["employment_years"]
    emp_filled = np.where(np.isnan(emp), 2.0, emp)
    lti = f["loan_amount"] / f["income"]
    return (
        -3.25
        - 0.95 * cs_z
        + dti_weight * (0.75 * log_dti + 0.45 * np.clip(log_dti, 0.0, None) * low_cs)
        + 0.90 * (f["utilization"] - 0.35)
        + 0.30 * np.minimum(f["delinquencies_2y"], 6)
        + 0.45 * np.log(lti / 0.25)
        + 0.35 * (f["term_months"] == 60)
        + 0.45 * (emp_filled < 1.0)
        + 0.20 * (emp_filled < 3.0)
        + 0.15 * np.isnan(emp)
        + _PURPOSE_RISK[f["purpose"]]
        + broker_weight * (f["channel"] == 2)
        - 0.30 * (f["home_ownership"] == 2)
        - 0.20 * (f["home_ownership"] == 1)
        + 0.10 * (f["age_band"] == 0)
    )


def _features(n: int, z: np.ndarray, u: np.ndarray, drift: bool) -> dict:
    """Integer-coded features from pre-drawn normals `z` and uniforms `u` (n x k each)."""
    age_band = _pick(u[:, 0], _AGE_BAND_P)
    age = _AGE_LOW[age_band] + u[:, 1] * (_AGE_HIGH[age_band] - _AGE_LOW[age_band])
    age_z = (age - 42.0) / 14.0
    sex = (u[:, 2] < 0.51).astype(np.int64)  # 1 = male; independent of everything else
    region = _pick(u[:, 3], _REGION_P)

    young = np.clip((65.0 - age) / 45.0, 0.0, 1.0)[:, None]
    channel_p = young * _CHANNEL_YOUNG + (1.0 - young) * _CHANNEL_OLD
    if drift:
        channel_p = channel_p * (1.0 - _CHANNEL_BROKER_SHIFT)
        channel_p[:, 2] += _CHANNEL_BROKER_SHIFT
    channel = _pick(u[:, 4], channel_p)
    purpose = _pick(u[:, 5], _PURPOSE_P_DRIFT if drift else _PURPOSE_P)

    log_income = np.log(_INCOME_MEDIAN[age_band] * _REGION_INCOME[region]) + 0.45 * z[:, 0]
    if drift:
        log_income += np.log(0.70)
    income = np.round(np.clip(np.exp(log_income), 6_000.0, 4_000_000.0), -2)
    inc_z = (np.log(income) - np.log(55_000.0)) / 0.5

    health = 0.85 * z[:, 1] + 0.2 * age_z + 0.25 * inc_z
    delinquencies = np.minimum(_poisson(u[:, 6], np.exp(-1.5 - 0.9 * health)), 20)
    score = (
        695.0 + 42.0 * health + 10.0 * age_z + 6.0 * inc_z - 16.0 * delinquencies + 28.0 * z[:, 2]
    )
    if drift:
        score -= 40.0
    credit_score = np.clip(np.round(score), 300, 850).astype(np.int64)
    utilization = np.round(np.clip(1.15 * _sigmoid(-0.6 - 0.8 * health + 0.7 * z[:, 3]), 0, 1.2), 3)

    employment = np.round((age - 18.0) * _sigmoid(-0.4 + 0.9 * z[:, 4]) * 0.9, 1)
    employment = np.clip(employment, 0.0, 60.0)
    employment[u[:, 7] < 0.02] = np.nan

    open_accounts = np.clip(
        np.round(np.exp(1.3 + 0.25 * age_z + 0.1 * inc_z + 0.45 * z[:, 5])), 0, 60
    )

    lti = _PURPOSE_LTI[purpose] * np.exp(0.45 * z[:, 6])
    loan_amount = np.clip(np.round(income * lti / 25.0) * 25.0, 500.0, 1_000_000.0)
    term_60 = _sigmoid(-0.8 + 1.3 * np.log(loan_amount / 15_000.0) + 0.8 * z[:, 7]) > 0.5
    term_months = np.where(term_60, 60, 36).astype(np.int64)

    dti = np.exp(np.log(0.27) - 0.22 * health + 0.40 * z[:, 8])
    dti = np.round(np.clip(dti, 0.0, 4.5), 3)

    home_logits = np.stack(
        [
            np.zeros(n),
            -0.6 + 1.2 * age_z + 0.9 * inc_z,
            -1.6 + 1.5 * age_z + 0.3 * inc_z,
        ],
        axis=1,
    )
    home_p = np.exp(home_logits)
    home_ownership = _pick(u[:, 8], home_p / home_p.sum(axis=1, keepdims=True))

    return {
        "income": income,
        "debt_to_income": dti,
        "credit_score": credit_score,
        "loan_amount": loan_amount,
        "term_months": term_months,
        "employment_years": employment,
        "open_accounts": open_accounts.astype(np.int64),
        "delinquencies_2y": delinquencies.astype(np.int64),
        "utilization": utilization,
        "home_ownership": home_ownership,
        "purpose": purpose,
        "region": region,
        "channel": channel,
        "age_band": age_band,
        "sex": sex,
    }


def _poisson(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson draws by inverting the CDF of a uniform (small rates; capped at 30)."""
    k = np.zeros(u.shape, dtype=np.int64)
    term = np.exp(-lam)
    cdf = term.copy()
    for i in range(1, 31):
        above = u > cdf
        if not above.any():
            break
        k += above
        term = term * lam / i
        cdf = cdf + term
    return k


def _check_day_args(rows: int, seed: int, scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


# The coarse variant: each number as a survey would record it, a few bands (value per band,
# upper edges); labels still follow the exact values, and about 30% of rows are positive.
COARSE_BANDS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "income": ((25_000, 50_000, 90_000, 150_000), (37_500, 70_000, 120_000)),
    "debt_to_income": ((0.1, 0.3, 0.6), (0.2, 0.45)),
    "credit_score": ((580, 650, 710, 780), (620, 680, 745)),
    "loan_amount": ((5_000, 15_000, 35_000), (10_000, 25_000)),
    "employment_years": ((0.5, 3.0, 8.0), (1.0, 5.0)),
    "open_accounts": ((2, 6, 12), (4, 9)),
    "delinquencies_2y": ((0, 1, 3), (1, 2)),
    "utilization": ((0.2, 0.5, 0.9), (0.35, 0.7)),
}
COARSE_LOGIT_SHIFT = 1.6  # moves the positive rate from about 12.5% to about 30%


def _coarsen(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(f)
    for name, (values, edges) in COARSE_BANDS.items():
        column = np.asarray(f[name], dtype=float)
        banded = np.asarray(values, dtype=float)[np.searchsorted(edges, column, side="right")]
        out[name] = np.where(np.isnan(column), np.nan, banded).astype(f[name].dtype)
    return out


def generate_day(
    day: dt.date, rows: int, seed: int, scenario: str = "stable", *, coarse: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and labels for one day (`coarse`: banded numbers, a 30% positive rate)."""
    _check_day_args(rows, seed, scenario)
    main_seq, scenario_seq = np.random.SeedSequence([seed, day.toordinal()]).spawn(2)
    rng = np.random.default_rng(main_seq)
    z = rng.standard_normal((rows, _N_NORMAL))
    u = rng.random((rows, _N_UNIFORM))
    label_u = rng.random(rows)
    seconds = np.sort(rng.random(rows) * 86_400.0).astype(np.int64)
    extra = np.random.default_rng(scenario_seq)

    f = _features(rows, z, u, drift=scenario == "covariate_drift")
    if scenario == "concept_drift":
        logit = _label_logit(f, dti_weight=2.0, broker_weight=1.4)
    else:
        logit = _label_logit(f)
    if coarse:
        logit = logit + COARSE_LOGIT_SHIFT
        f = _coarsen(f)
    defaulted = (label_u < _sigmoid(logit + 0.70 * z[:, 9])).astype(np.int64)
    if scenario == "label_noise":
        flip = extra.random(rows) < 0.25
        defaulted = np.where(flip, 1 - defaulted, defaulted)

    prefix = day.strftime("%Y%m%d")
    ids = np.array([f"{prefix}-{i:06d}" for i in range(1, rows + 1)], dtype=object)
    start = np.datetime64(day.isoformat(), "ns")
    ts = start + seconds.astype("timedelta64[s]").astype("timedelta64[ns]")

    features = pd.DataFrame(
        {
            ID_COLUMN: ids,
            TIMESTAMP_COLUMN: pd.Series(ts, dtype="datetime64[ns]"),
            "income": f["income"],
            "debt_to_income": f["debt_to_income"],
            "credit_score": f["credit_score"],
            "loan_amount": f["loan_amount"],
            "term_months": f["term_months"],
            "employment_years": f["employment_years"],
            "open_accounts": f["open_accounts"],
            "delinquencies_2y": f["delinquencies_2y"],
            "utilization": f["utilization"],
            "home_ownership": np.array(HOME_OWNERSHIP, dtype=object)[f["home_ownership"]],
            "purpose": np.array(PURPOSES, dtype=object)[f["purpose"]],
            "region": np.array(REGIONS, dtype=object)[f["region"]],
            "channel": np.array(CHANNELS, dtype=object)[f["channel"]],
            "age_band": np.array(AGE_BANDS, dtype=object)[f["age_band"]],
            "sex": np.array(SEXES, dtype=object)[f["sex"]],
        }
    )
    labels = pd.DataFrame({ID_COLUMN: ids.copy(), TARGET_COLUMN: defaulted})

    if scenario == "schema_corruption":
        features = features.rename(columns={"credit_score": "fico_score"})
        features["income"] = pd.Series(
            [f"${int(v):,}" for v in f["income"]], index=features.index, dtype=object
        )
    elif scenario == "value_corruption":
        income = features["income"].to_numpy(copy=True)
        income[extra.random(rows) < 0.30] = np.nan
        features["income"] = income
        features["loan_amount"] = np.round(features["loan_amount"] / 1000.0, 3)
    elif scenario == "leakage":
        leaked = np.where(
            defaulted == 1,
            extra.integers(3, 9, size=rows),
            np.where(extra.random(rows) < 0.03, extra.integers(1, 3, size=rows), 0),
        )
        features["delinquencies_2y"] = leaked.astype(np.int64)
    return features, labels


def scenario_window(
    start: dt.date,
    days: int,
    scenario_start: dt.date | None = None,
    scenario_end: dt.date | None = None,
) -> tuple[dt.date, dt.date]:
    """The inclusive scenario date range; by default the last 7 days of the span."""
    last = start + dt.timedelta(days=days - 1)
    end = scenario_end or last
    begin = scenario_start or max(start, end - dt.timedelta(days=6))
    if begin > end:
        raise ValueError(f"scenario start {begin} is after scenario end {end}")
    return begin, end


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    # The other format's file of the same day would make the batch ambiguous: drop it.
    other = path.with_suffix(".csv" if fmt == "parquet" else ".parquet")
    other.unlink(missing_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False, engine="pyarrow", compression="snappy")
    else:
        frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S", lineterminator="\n")


def write_demo(
    features_dir: Path,
    labels_dir: Path | None,
    *,
    start: dt.date,
    days: int,
    rows_per_day: int,
    seed: int,
    scenario: str = "stable",
    scenario_start: dt.date | None = None,
    scenario_end: dt.date | None = None,
    fmt: str = "parquet",
    coarse: bool = False,
) -> list[Path]:
    """Write one features file and one labels file per day; returns the feature file paths.

    Creates the folders and overwrites files of the same name. The scenario applies to the days
    in [scenario_start, scenario_end] (default: the last 7 days); the others are stable. With
    `labels_dir` None the target column is written into the features file instead.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    _check_day_args(rows_per_day, seed, scenario)
    begin, end = scenario_window(start, days, scenario_start, scenario_end)
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    if labels_dir is not None:
        labels_dir = Path(labels_dir)
        labels_dir.mkdir(parents=True, exist_ok=True)

    written = []
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        day_scenario = scenario if begin <= day <= end else "stable"
        features, labels = generate_day(day, rows_per_day, seed, day_scenario, coarse=coarse)
        name = f"{day.isoformat()}.{fmt}"
        if labels_dir is None:
            features[TARGET_COLUMN] = labels[TARGET_COLUMN].to_numpy()
        else:
            _write(labels, labels_dir / name, fmt)
        path = features_dir / name
        _write(features, path, fmt)
        written.append(path)
    return written


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.demo.simulate",
        description="Write seeded demo loan applications (features) and default labels per day.",
    )
    parser.add_argument("--features-dir", type=Path, help="default: dataset.features_dir")
    parser.add_argument("--labels-dir", type=Path, help="default: dataset.labels_dir")
    parser.add_argument("--start", type=_date, default=dt.date(2026, 1, 1), help="first day")
    parser.add_argument("--days", type=_positive, default=120)
    parser.add_argument("--rows-per-day", type=_positive, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenario", choices=SCENARIOS, default="stable")
    parser.add_argument("--scenario-start", type=_date, help="default: 7 days before the end")
    parser.add_argument("--scenario-end", type=_date, help="default: the last day")
    parser.add_argument("--format", choices=FORMATS, default="parquet", dest="fmt")
    parser.add_argument(
        "--coarse",
        action="store_true",
        help="numbers in a few bands, as a survey records them, and a 30%% positive rate",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be non-negative, got {args.seed}")
    features_dir, labels_dir = args.features_dir, args.labels_dir
    if features_dir is None or labels_dir is None:
        from ml_assets.settings import load_settings

        dataset = load_settings().dataset
        features_dir = features_dir or dataset.features_dir
        labels_dir = labels_dir or dataset.labels_dir
    try:
        begin, end = scenario_window(args.start, args.days, args.scenario_start, args.scenario_end)
    except ValueError as error:
        parser.error(str(error))
    paths = write_demo(
        features_dir,
        labels_dir,
        start=args.start,
        days=args.days,
        rows_per_day=args.rows_per_day,
        seed=args.seed,
        scenario=args.scenario,
        scenario_start=begin,
        scenario_end=end,
        fmt=args.fmt,
        coarse=args.coarse,
    )
    last = args.start + dt.timedelta(days=args.days - 1)
    where = f"labels to {labels_dir}" if labels_dir is not None else "labels in the features"
    scenario = "stable" if args.scenario == "stable" else f"{args.scenario} on {begin}..{end}"
    print(
        f"wrote {len(paths)} {args.fmt} day(s) {args.start}..{last} x {args.rows_per_day} rows "
        f"(seed {args.seed}, {scenario}{', coarse' if args.coarse else ''}) to {features_dir}, "
        f"{where}",
        file=sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
