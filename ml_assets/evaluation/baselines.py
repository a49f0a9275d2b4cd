"""What the candidate must beat, and where its scores become decisions, on any dataset.

The baselines are the ML Test Score's "simple model": the prior (every row scored at the train
split's positive rate) and a logistic regression on the same features, trained on the same
train split and scored on the same test rows as the candidate. The decision threshold, when
pipeline.yaml does not fix one, is the score that maximises F1 on the validation split, so it
follows the dataset's base rate instead of the demo's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ml_assets.data.contract import DataContract

# Rows of the train split the logistic regression is fitted on (a seeded sample beyond): a
# baseline needs no more, and fitting stays around a second on this machine.
LOGISTIC_MAX_ROWS = 50_000


def f1_maximising_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold with the highest F1 (scores at or above it are positive)."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    if len(thresholds) == 0:
        return 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
    # precision/recall have one more entry than thresholds (recall 0 at no threshold).
    return float(thresholds[int(np.argmax(f1[:-1]))])


def prior_scores(train_positive_rate: float, rows: int) -> np.ndarray:
    """The base-rate predictor: every row scored at the train split's positive rate."""
    import numpy as np

    return np.full(rows, train_positive_rate, dtype=float)


def logistic_regression_scores(
    train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, contract: DataContract, seed: int
) -> np.ndarray:
    """A logistic regression on the contract's features: numbers median-imputed and scaled,
    categories one-hot (unseen ones ignored), fitted on at most `LOGISTIC_MAX_ROWS` train rows."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in contract.numeric_columns if c in contract.feature_columns]
    categorical = [c for c in contract.categorical_columns if c in contract.feature_columns]
    if len(train) > LOGISTIC_MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(train), LOGISTIC_MAX_ROWS, replace=False)
        train, y_train = train.iloc[np.sort(keep)], y_train[np.sort(keep)]

    def as_text(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[categorical].astype("object").where(frame[categorical].notna(), "<missing>")

    transformers = []
    if numeric:
        transformers.append(
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
        )
    if categorical:
        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    model = make_pipeline(
        ColumnTransformer(transformers), LogisticRegression(max_iter=1000, random_state=seed)
    )

    def prepared(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[numeric].astype("float64")
        return out.join(as_text(frame)) if categorical else out

    model.fit(prepared(train), y_train)
    return model.predict_proba(prepared(test))[:, 1]
