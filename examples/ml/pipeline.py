"""Choose and train a wine classifier with scikit-learn: model selection as a plait pipeline.

The steps, in the order the data flows::

    load ─► split ─► cross_validate (map: one element per candidate) ─► select ─► fit ─► evaluate

- ``load`` reads the wine data set that ships with scikit-learn (178 wines, 13 chemical
  measurements, 3 cultivars): nothing is downloaded.
- ``split`` holds out ``test_size`` of the wines, stratified by class, shuffled by ``seed``.
- ``cross_validate`` is a **map step**: it runs once per candidate model of the config
  (``config.candidates``), scoring each by 5-fold cross-validation on the training wines
  only. With a store each candidate is cached on its own: add one to the config and only
  that one is computed.
- ``select`` keeps the best candidate; ``fit`` trains it on all training wines;
  ``evaluate`` scores it once on the held-out wines.

Assets, an experiment and a frozen version (``docs/assets.md``): ``split`` returns a
``Dataset``, ``fit`` a ``Model`` named ``wine-model`` and ``evaluate`` ``Metrics``, so
with a store each version lands in the catalog (``plait assets list``) and the scores
become the run's metrics. The pipeline is version ``1.0.0`` of the experiment
``wine-selection``: run several seeds and compare them in one table
(``plait runs list --experiment wine-selection --sort accuracy --desc``);
``--freeze FILE`` seals the pipeline version into a snapshot.

Run it (scikit-learn needed: ``pip install -e '.[examples]'``)::

    python examples/ml/pipeline.py
    python examples/ml/pipeline.py --store .plait      # twice: every step is a cache hit
    python examples/ml/pipeline.py --store .plait --seeds 0,1,2 --freeze wine-1.0.0.json
    plait run examples/ml/pipeline.py -p seed=7         # the same pipeline from the CLI
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from plait import Dataset, Metrics, Model, Pipeline, Store, step
from plait.snapshot import Snapshot

CONFIG: dict[str, Any] = {
    "test_size": 0.25,
    "folds": 5,
    "candidates": [
        {"name": "logistic C=0.1", "kind": "logistic", "C": 0.1},
        {"name": "logistic C=1", "kind": "logistic", "C": 1.0},
        {"name": "logistic C=10", "kind": "logistic", "C": 10.0},
        {"name": "k-NN k=5", "kind": "knn", "k": 5},
        {"name": "k-NN k=15", "kind": "knn", "k": 15},
        {"name": "random forest", "kind": "forest", "trees": 100},
    ],
}


@dataclass(frozen=True)
class Split:
    """Training and test rows of a data set."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


def make_model(candidate: dict[str, Any], seed: int) -> Any:
    """A scikit-learn estimator for a candidate spec (features standardised first)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kind = candidate["kind"]
    if kind == "logistic":
        model: Any = LogisticRegression(C=candidate["C"], max_iter=2000)
    elif kind == "knn":
        model = KNeighborsClassifier(n_neighbors=candidate["k"])
    elif kind == "forest":
        model = RandomForestClassifier(n_estimators=candidate["trees"], random_state=seed)
    else:
        raise ValueError(f"unknown model kind {kind!r}; use logistic, knn or forest")
    return make_pipeline(StandardScaler(), model)


@step(outputs=["features", "labels", "class_names"])
def load() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The wine data set shipped with scikit-learn."""
    from sklearn.datasets import load_wine

    data = load_wine()
    return data.data, data.target, tuple(str(name) for name in data.target_names)


@step(outputs="split")
def split(
    features: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    test_size: float,
    seed: int = 0,
) -> Dataset[Split]:
    """Hold out ``test_size`` of the rows, stratified by class (a catalogued dataset)."""
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    return Dataset(
        Split(X_train, X_test, y_train, y_test, class_names),
        name="wine-split",
        metadata={"train_rows": len(y_train), "test_rows": len(y_test)},
    )


@step(map="candidates", inputs={"candidates": "config.candidates"}, outputs="scores")
def cross_validate(
    candidates: dict[str, Any], split: Split, folds: int, seed: int = 0
) -> dict[str, Any]:
    """Mean accuracy of one candidate over ``folds`` folds of the training rows."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(make_model(candidates, seed), split.X_train, split.y_train, cv=cv)
    return {"candidate": candidates, "accuracy": float(scores.mean())}


@step(outputs="best")
def select(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate with the best cross-validated accuracy (the first one on a tie)."""
    return max(scores, key=lambda score: score["accuracy"])


@step(outputs="model")
def fit(best: dict[str, Any], split: Split, seed: int = 0) -> Model:
    """Train the chosen candidate on every training row (a catalogued model)."""
    model = make_model(best["candidate"], seed).fit(split.X_train, split.y_train)
    return Model(model, name="wine-model", tags=[best["candidate"]["kind"]])


@step(outputs="test_scores")
def evaluate(model: Any, split: Split) -> Metrics:
    """Accuracy and macro-F1 on the held-out rows (the run's metrics)."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = model.predict(split.X_test)
    scores = {
        "accuracy": float(accuracy_score(split.y_test, predicted)),
        "macro_f1": float(f1_score(split.y_test, predicted, average="macro")),
        "n_test": len(split.y_test),
    }
    return Metrics(scores)


pipeline = Pipeline(
    [load, split, cross_validate, select, fit, evaluate],
    name="wine",
    config=CONFIG,
    experiment="wine-selection",
    version="1.0.0",
)


def _report(result: Any) -> None:
    print("\ncross-validated accuracy on the training wines:")
    for score in sorted(result["scores"], key=lambda s: -s["accuracy"]):
        print(f"  {score['candidate']['name']:<16} {score['accuracy']:.3f}")
    test = result["test_scores"]
    print(
        f"\nbest: {result['best']['candidate']['name']} · test accuracy {test['accuracy']:.3f}"
        f" · macro-F1 {test['macro_f1']:.3f} on {test['n_test']} held-out wines"
    )


def _experiment(store: Store, freeze: str | None) -> None:
    """The experiment table, the best run, the catalogued models and the frozen version."""
    table = store.history.experiment("wine-selection", project=store.project)
    print("\nexperiment wine-selection, best accuracy first:")
    print(table.sort("accuracy").to_text())
    best = store.history.best("wine-selection", "accuracy", mode="max")
    print(f"best run: {best.run_id} (seed {best.params.get('seed')})")
    models = store.catalog.find(kind="model", name="wine-model")
    print(f"wine-model versions in the catalog: {len(models)}")
    if freeze:
        snapshot = pipeline.freeze()
        snapshot.save(freeze)
        Snapshot.load(freeze).verify()
        print(f"froze version {snapshot.version} to {freeze} (seal {snapshot.seal[:16]})")


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline (once per seed) and print the ranking and the test scores, then
    with a store the experiment table; 1 if a run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the folds")
    parser.add_argument("--seeds", help="several seeds, one run each: 0,1,2 (with --store)")
    parser.add_argument("--store", help="a directory to cache step outputs in (default: none)")
    parser.add_argument("--executor", default="threads:4", help="where the steps run")
    parser.add_argument("--freeze", metavar="FILE", help="save a sealed snapshot of the version")
    args = parser.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    store = Store(args.store) if args.store else None
    try:
        for seed in seeds:
            result = pipeline.run(
                params={"seed": seed}, store=store, executor=args.executor, on_error="continue"
            )
            print(result.summary())
            if not result.ok:
                return 1
            _report(result)
        if store is not None:
            _experiment(store, args.freeze)
        elif args.freeze:
            pipeline.freeze().save(args.freeze)
    finally:
        if store is not None:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
