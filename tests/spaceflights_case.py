"""A spaceflights-style project (Kedro's starter, rewritten for plait) written to a folder.

Used by ``test_dask`` (a few CLI runs on a LocalCluster) and by
``benchmarks/soak_spaceflights.py`` (20 runs). The layout is a new user's: steps in
``nodes.py``, the pipeline, its datasets and the hasher registrations in ``pipeline.py``
(workers import ``nodes`` only, the reported failure's setting), raw data as CSV files,
pandas for the tables, scikit-learn for the model and a matplotlib figure.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

NODES = textwrap.dedent(
    """
    import matplotlib

    matplotlib.use("Agg")

    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split


    def _percent(column):
        return column.str.replace("%", "").astype(float) / 100


    def preprocess_companies(companies):
        out = companies.copy()
        out["iata_approved"] = out["iata_approved"] == "t"
        out["company_rating"] = _percent(out["company_rating"])
        return out


    def preprocess_shuttles(shuttles):
        out = shuttles.copy()
        out["d_check_complete"] = out["d_check_complete"] == "t"
        out["price"] = out["price"].str.replace("[$,]", "", regex=True).astype(float)
        return out


    def create_model_input_table(preprocess_shuttles, preprocess_companies):
        table = preprocess_shuttles.merge(preprocess_companies, left_on="company_id", right_on="id")
        return table.dropna()


    def split_data(create_model_input_table, test_size, random_state):
        features = ["engines", "passenger_capacity", "crew", "d_check_complete", "company_rating"]
        X = create_model_input_table[features].astype(float)
        y = create_model_input_table["price"]
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=random_state
        )
        return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


    def train_model(X_train, y_train):
        return LinearRegression().fit(X_train, y_train)


    def evaluate_model(train_model, X_test, y_test):
        return {"r2": float(r2_score(y_test, train_model.predict(X_test)))}


    def plot_predictions(train_model, X_test, y_test):
        figure, axes = plt.subplots(figsize=(4, 3))
        axes.scatter(y_test, train_model.predict(X_test), s=4)
        axes.set_xlabel("price")
        axes.set_ylabel("predicted")
        plt.close(figure)
        return figure
    """
)

PIPELINE = textwrap.dedent(
    """
    import matplotlib.figure
    from sklearn.linear_model import LinearRegression

    import nodes
    from plait import Pipeline, step
    from plait.io import CSV
    from plait.store.hashing import register_hasher

    # Registered here, in the driver's pipeline file: the workers never import this file.
    register_hasher(LinearRegression, lambda m: (m.coef_.tobytes(), float(m.intercept_)))
    register_hasher(matplotlib.figure.Figure, lambda f: [tuple(a.get_xlabel()) for a in f.axes])

    pipeline = Pipeline(
        [
            step(nodes.preprocess_companies),
            step(nodes.preprocess_shuttles),
            step(nodes.create_model_input_table),
            step(nodes.split_data, outputs=["X_train", "X_test", "y_train", "y_test"]),
            step(nodes.train_model),
            step(nodes.evaluate_model),
            step(nodes.plot_predictions),
        ],
        name="spaceflights",
        params={"test_size": 0.2, "random_state": 3},
        datasets={
            "companies": CSV("data/companies.csv"),
            "shuttles": CSV("data/shuttles.csv"),
        },
    )
    """
)


def write_project(folder: Path, rows: int = 2000) -> Path:
    """Write the project (code and raw CSV data, generated with a fixed seed) to ``folder``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nodes.py").write_text(NODES)
    (folder / "pipeline.py").write_text(PIPELINE)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    companies = pd.DataFrame(
        {
            "id": range(200),
            "company_rating": [f"{v}%" for v in rng.integers(50, 100, 200)],
            "iata_approved": rng.choice(["t", "f"], 200),
        }
    )
    engines = rng.integers(1, 5, rows)
    capacity = rng.integers(2, 12, rows)
    price = 1000 + 300 * engines + 150 * capacity + rng.normal(0, 50, rows)
    shuttles = pd.DataFrame(
        {
            "id": range(rows),
            "company_id": rng.integers(0, 200, rows),
            "engines": engines,
            "passenger_capacity": capacity,
            "crew": rng.integers(1, 6, rows),
            "d_check_complete": rng.choice(["t", "f"], rows),
            "price": [f"${v:,.2f}" for v in price],
        }
    )
    companies.to_csv(data / "companies.csv", index=False)
    shuttles.to_csv(data / "shuttles.csv", index=False)
    return folder
