"""Spaceflights: Kedro's tutorial project as a plait pipeline with datasets.

Three raw CSV files (shipped in ``data/01_raw``) are cleaned, joined into a model input
table and used to fit a price model. Every file is named once, in ``catalog.yml``: the raw
files are *sources* (read when a step needs them; a change to a file re-runs exactly the
steps that read it), the rest are *sinks* (written after their step; the regressor keeps a
version per run). Run it twice with a store and every step is a cache hit; edit a raw CSV
and only what depends on it runs again.

    python examples/spaceflights/pipeline.py [--project DIR] [--store DIR]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from plait import Pipeline, step
from plait.io import load_catalog

HERE = Path(__file__).resolve().parent

CONFIG = {
    "model_options": {
        "test_size": 0.2,
        "random_state": 3,
        "features": [
            "engines",
            "passenger_capacity",
            "crew",
            "d_check_complete",
            "moon_clearance_complete",
            "iata_approved",
            "company_rating",
            "review_scores_rating",
        ],
    }
}


def _is_true(column: pd.Series) -> pd.Series:
    return column == "t"


def _percentage(column: pd.Series) -> pd.Series:
    return column.str.replace("%", "").astype(float) / 100


def _money(column: pd.Series) -> pd.Series:
    return column.str.replace("$", "").str.replace(",", "").astype(float)


@step
def preprocessed_companies(companies: pd.DataFrame) -> pd.DataFrame:
    """Ratings as fractions, IATA approval as booleans."""
    companies = companies.copy()
    companies["iata_approved"] = _is_true(companies["iata_approved"])
    companies["company_rating"] = _percentage(companies["company_rating"])
    return companies


@step
def preprocessed_shuttles(shuttles: pd.DataFrame) -> pd.DataFrame:
    """Checks as booleans, prices as numbers."""
    shuttles = shuttles.copy()
    shuttles["d_check_complete"] = _is_true(shuttles["d_check_complete"])
    shuttles["moon_clearance_complete"] = _is_true(shuttles["moon_clearance_complete"])
    shuttles["price"] = _money(shuttles["price"])
    return shuttles


@step
def model_input_table(
    preprocessed_shuttles: pd.DataFrame,
    preprocessed_companies: pd.DataFrame,
    reviews: pd.DataFrame,
) -> pd.DataFrame:
    """Shuttles with their reviews and their company, rows with gaps dropped."""
    rated = preprocessed_shuttles.merge(reviews, left_on="id", right_on="shuttle_id")
    table = rated.merge(
        preprocessed_companies, left_on="company_id", right_on="id", suffixes=("", "_company")
    )
    return table.dropna()


@step(
    inputs={"options": "config.model_options"},
    outputs=["X_train", "X_test", "y_train", "y_test"],
)
def split_data(model_input_table: pd.DataFrame, options: dict) -> tuple:
    """A random train/test split of the features and the price."""
    features = model_input_table[options["features"]].astype(float)
    test = features.sample(frac=options["test_size"], random_state=options["random_state"])
    train = features.drop(test.index)
    price = model_input_table["price"]
    return train, test, price.loc[train.index], price.loc[test.index]


@step
def regressor(X_train: pd.DataFrame, y_train: pd.Series) -> dict:
    """Least-squares linear regression: the coefficients by feature and the intercept."""
    design = np.column_stack([X_train.to_numpy(), np.ones(len(X_train))])
    solution, *_ = np.linalg.lstsq(design, y_train.to_numpy(), rcond=None)
    return {"features": list(X_train.columns), "coefficients": solution.tolist()}


@step
def metrics(regressor: dict, X_test: pd.DataFrame, y_test: pd.Series) -> dict:
    """R² and mean absolute error on the test shuttles."""
    weights = np.asarray(regressor["coefficients"])
    predicted = X_test[regressor["features"]].to_numpy() @ weights[:-1] + weights[-1]
    actual = y_test.to_numpy()
    residual = float(((actual - predicted) ** 2).sum())
    total = float(((actual - actual.mean()) ** 2).sum())
    return {
        "r2": round(1 - residual / total, 4),
        "mae": round(float(np.abs(actual - predicted).mean()), 2),
        "test_shuttles": len(actual),
    }


def build(project: Path) -> Pipeline:
    """The pipeline over the datasets of ``catalog.yml``, under ``project``."""
    return Pipeline(
        [
            preprocessed_companies,
            preprocessed_shuttles,
            model_input_table,
            split_data,
            regressor,
            metrics,
        ],
        name="spaceflights",
        config=CONFIG,
        datasets=load_catalog(HERE / "catalog.yml", root=project),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="spaceflights", help="where the data goes")
    parser.add_argument("--store", default=None, help="cache and history (default: none)")
    args = parser.parse_args()
    project = Path(args.project)
    raw = project / "data" / "01_raw"
    if not raw.exists():  # a new project starts from the shipped raw data
        shutil.copytree(HERE / "data" / "01_raw", raw)
    result = build(project).run(store=args.store)
    print(result.summary())
    print()
    scores = result["metrics"]
    print(f"R² {scores['r2']} · mean absolute error {scores['mae']} on {scores['test_shuttles']}")
    print(f"written: {project / 'data' / '08_reporting' / 'metrics.json'}")


if __name__ == "__main__":
    main()
