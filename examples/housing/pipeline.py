"""Predict house prices: a small, real data job written as a plait pipeline.

The steps, in the order the data flows::

    load ─► clean ─► featurize ─► split ─► fit ─► evaluate ─► write_report
                 └──────────── cleaning_stats ─────────────────►┘

- ``load`` reads ``housing.csv`` (shipped next to this file) with the stdlib ``csv``.
- ``clean`` drops rows with a missing cell and clips prices at
  ``config.cleaning.max_price``; it has two outputs, the rows and a few counts.
- ``featurize`` one-hot encodes the neighbourhood and builds the feature matrix.
- ``split`` shuffles with the ``seed`` param and returns two outputs, ``train`` and
  ``test``.
- ``fit`` standardises the features with statistics of the *training* rows only (so
  nothing about the test rows leaks into the model) and solves a ridge regression with
  ``numpy.linalg.lstsq``, the L2 penalty being ``config.model.ridge``.
- ``evaluate`` computes RMSE, MAE and R² on the test rows.
- ``write_report`` is a sink (``outputs=[]``): it writes a Markdown report to the
  ``report_path`` param.

Three ways of reading the config are shown: a dotted path (``"config.cleaning.max_price"``),
a top-level key picked up by a parameter of the same name (``data_path``,
``test_fraction``) and the whole config (``write_report(config)``).

Run it from the repository root (the report lands in the current directory)::

    python examples/housing/pipeline.py                   # cached and recorded in ./.plait
    python examples/housing/pipeline.py                   # again: every step is a cache hit
    python examples/housing/pipeline.py --seed 7 --report /tmp/housing.md
    python examples/housing/pipeline.py --store none      # in memory only

or use ``pipeline`` from Python (``examples`` is not a package, so load the file)::

    import runpy
    pipeline = runpy.run_path("examples/housing/pipeline.py")["pipeline"]
    result = pipeline.run(params={"seed": 42, "report_path": "report.md"})
    result["metrics"]   # {'rmse': ..., 'mae': ..., 'r2': ..., 'n_test': 97}
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plait import Pipeline, step

HERE = Path(__file__).resolve().parent
DATA_PATH = str(HERE / "housing.csv")
NUMERIC = ("sqft", "bedrooms", "age", "distance_km")
TARGET = "price"
CATEGORY = "neighbourhood"

CONFIG: dict[str, Any] = {
    "data_path": DATA_PATH,
    "test_fraction": 0.2,
    "cleaning": {"max_price": 900_000},
    "model": {"ridge": 1.0},
}


@dataclass(frozen=True)
class Dataset:
    """A feature matrix, its target and the names of its columns."""

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class LinearModel:
    """A fitted linear model over standardised features."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # per standardised feature
    intercept: float
    ridge: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted prices for the rows of ``X`` (same columns as at fit time)."""
        return ((X - self.mean) / self.scale) @ self.weights + self.intercept

    @property
    def coefficients(self) -> dict[str, float]:
        """The price change per unit of each raw feature (per sqft, per bedroom, ...)."""
        return {
            name: float(w / s)
            for name, w, s in zip(self.feature_names, self.weights, self.scale, strict=True)
        }


@step(outputs="listings", input_files=[DATA_PATH])
def load(data_path: str) -> list[dict[str, str]]:
    """Read every listing of the CSV at ``data_path`` as a dict of strings.

    ``input_files`` puts the CSV's contents in the step's cache key, so with a store an
    edited CSV is read again while an unchanged one is not.
    """
    with open(data_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {*NUMERIC, CATEGORY, TARGET} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{data_path}: missing columns {sorted(missing)}")
        return list(reader)


@step(
    inputs={"max_price": "config.cleaning.max_price"},
    outputs=["rows", "cleaning_stats"],
)
def clean(
    listings: list[dict[str, str]], max_price: float
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Drop listings with a missing cell, parse numbers, clip prices at ``max_price``."""
    columns = (*NUMERIC, CATEGORY, TARGET)
    complete = [row for row in listings if all(row[c].strip() for c in columns)]
    rows: list[dict[str, Any]] = []
    clipped = 0
    for row in complete:
        parsed: dict[str, Any] = {c: float(row[c]) for c in NUMERIC}
        parsed[CATEGORY] = row[CATEGORY].strip()
        price = float(row[TARGET])
        if price > max_price:
            clipped += 1
            price = float(max_price)
        parsed[TARGET] = price
        rows.append(parsed)
    stats = {
        "loaded": len(listings),
        "dropped_missing": len(listings) - len(complete),
        "clipped_price": clipped,
        "kept": len(rows),
    }
    return rows, stats


@step(outputs="dataset")
def featurize(rows: list[dict[str, Any]]) -> Dataset:
    """Numeric columns plus a one-hot neighbourhood (the first, alphabetically, is the
    baseline the others are compared with)."""
    categories = sorted({row[CATEGORY] for row in rows})
    dummies = categories[1:]
    X = np.array(
        [[row[c] for c in NUMERIC] + [float(row[CATEGORY] == d) for d in dummies] for row in rows]
    )
    y = np.array([row[TARGET] for row in rows])
    names = (*NUMERIC, *(f"{CATEGORY}={d} (vs {categories[0]})" for d in dummies))
    return Dataset(X, y, names)


@step(outputs=["train", "test"])
def split(dataset: Dataset, test_fraction: float, seed: int = 42) -> tuple[Dataset, Dataset]:
    """Shuffle the rows with ``seed`` and hold out ``test_fraction`` of them."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_test = max(1, round(len(dataset) * test_fraction))
    test_rows, train_rows = order[:n_test], order[n_test:]
    names = dataset.feature_names
    return (
        Dataset(dataset.X[train_rows], dataset.y[train_rows], names),
        Dataset(dataset.X[test_rows], dataset.y[test_rows], names),
    )


@step(inputs={"ridge": "config.model.ridge"}, outputs="linear_model")
def fit(train: Dataset, ridge: float) -> LinearModel:
    """Ridge regression by least squares on standardised features.

    The intercept is not penalised: with centred features it is the mean price. The L2
    penalty enters as extra rows ``sqrt(ridge) * I`` under the design matrix.
    """
    mean = train.X.mean(axis=0)
    scale = train.X.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column stays constant instead of dividing by 0
    Z = (train.X - mean) / scale
    intercept = float(train.y.mean())
    n_features = Z.shape[1]
    design = np.vstack([Z, np.sqrt(ridge) * np.eye(n_features)])
    target = np.concatenate([train.y - intercept, np.zeros(n_features)])
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    return LinearModel(train.feature_names, mean, scale, weights, intercept, ridge)


@step(outputs="metrics")
def evaluate(linear_model: LinearModel, test: Dataset) -> dict[str, float]:
    """RMSE, MAE and R² of the model's predictions on the held-out rows."""
    residuals = test.y - linear_model.predict(test.X)
    total = float(np.sum((test.y - test.y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(residuals**2))),
        "mae": float(np.mean(np.abs(residuals))),
        "r2": 1.0 - float(np.sum(residuals**2)) / total,
        "n_test": len(test),
    }


@step(outputs=[])
def write_report(
    metrics: dict[str, float],
    linear_model: LinearModel,
    cleaning_stats: dict[str, int],
    config: dict[str, Any],
    report_path: str = "housing_report.md",
) -> None:
    """Write a Markdown report of the data, the model and its scores to ``report_path``."""
    lines = [
        "# Housing price model",
        "",
        "## Data",
        "",
        f"- listings loaded: {cleaning_stats['loaded']}",
        f"- dropped for a missing value: {cleaning_stats['dropped_missing']}",
        f"- prices clipped at {config['cleaning']['max_price']:,}: "
        f"{cleaning_stats['clipped_price']}",
        f"- listings kept: {cleaning_stats['kept']}",
        "",
        "## Scores on the test set",
        "",
        "| metric | value |",
        "| --- | ---: |",
        f"| RMSE | {metrics['rmse']:,.0f} |",
        f"| MAE | {metrics['mae']:,.0f} |",
        f"| R² | {metrics['r2']:.3f} |",
        f"| test rows | {metrics['n_test']} |",
        "",
        f"## Coefficients (ridge = {linear_model.ridge})",
        "",
        "Price change per unit of each feature (per sqft, per bedroom, per year, per km);",
        "a neighbourhood's coefficient is its premium over the baseline neighbourhood.",
        "",
        "| feature | coefficient |",
        "| --- | ---: |",
        f"| intercept (price at the average features) | {linear_model.intercept:,.0f} |",
        *(f"| {name} | {value:,.1f} |" for name, value in linear_model.coefficients.items()),
        "",
    ]
    Path(report_path).write_text("\n".join(lines), encoding="utf-8")


pipeline = Pipeline(
    [load, clean, featurize, split, fit, evaluate, write_report],
    name="housing",
    config=CONFIG,
)


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline, print its summary and metrics; 1 if the run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="shuffle seed of the split")
    parser.add_argument(
        "--report", default="housing_report.md", help="where to write the Markdown report"
    )
    parser.add_argument(
        "--store",
        default=".plait",
        help="where step outputs are cached and runs recorded (default: ./.plait; "
        "'none' keeps everything in memory)",
    )
    args = parser.parse_args(argv)

    result = pipeline.run(
        params={"seed": args.seed, "report_path": args.report},
        store=None if args.store == "none" else args.store,
        on_error="continue",
    )
    print(result.summary())
    if not result.ok:
        return 1
    metrics = result["metrics"]
    print()
    print(f"test RMSE {metrics['rmse']:,.0f}   MAE {metrics['mae']:,.0f}   R² {metrics['r2']:.3f}")
    print(f"report written to {args.report}")
    if args.store != "none":
        print(f"run {result.run_id} recorded in {args.store} (run again: every step is cached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
