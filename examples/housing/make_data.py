"""Generate ``housing.csv``: 500 synthetic house sales, deterministically.

Run once; the CSV it writes is committed next to this script, so the example pipeline
never depends on this generator. Running it again rewrites the same bytes::

    python examples/housing/make_data.py

The data is made to look like a real export, warts included:

- ``price`` follows a known linear model (190 per sqft, 12,000 per bedroom, -1,100 per
  year of age, -6,500 per km from the centre, a premium per neighbourhood) times about
  10% multiplicative noise, so a linear regression should do well and its coefficients
  can be checked against these;
- about 3% of the rows have an empty cell (a missing ``sqft``, ``age``, ``distance_km``
  or ``neighbourhood``);
- six of the most expensive houses sold for about twice what the model says (grand
  estates whose appeal the columns cannot explain), well above every other sale; the
  pipeline clips prices at ``config.cleaning.max_price`` so that they do not dominate a
  least-squares fit.

Only the standard library is used (``random`` with a fixed seed, ``csv``).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ROWS = 500
SEED = 20240611
OUTPUT = Path(__file__).with_name("housing.csv")
COLUMNS = ["listing_id", "sqft", "bedrooms", "age", "distance_km", "neighbourhood", "price"]

# Neighbourhood -> (share of listings, price premium in the currency unit).
NEIGHBOURHOODS = {
    "Old Town": (0.18, 95_000),
    "Riverside": (0.22, 60_000),
    "Hillcrest": (0.20, 40_000),
    "Docklands": (0.15, 20_000),
    "Greenfield": (0.25, 0),
}
OPTIONAL = ["sqft", "age", "distance_km", "neighbourhood"]
MISSING_ROWS = 15
OUTLIER_ROWS = 6


def make_row(rng: random.Random, listing_id: int) -> dict[str, str]:
    """One plausible listing, with the price drawn from the true model plus noise."""
    names = list(NEIGHBOURHOODS)
    weights = [share for share, _ in NEIGHBOURHOODS.values()]
    neighbourhood = rng.choices(names, weights)[0]
    sqft = min(max(rng.lognormvariate(7.25, 0.35), 450.0), 5_000.0)
    bedrooms = min(max(round(sqft / 550 + rng.gauss(0, 0.7)), 1), 6)
    age = min(max(rng.gammavariate(2.0, 14.0), 0.0), 120.0)
    distance_km = min(max(rng.gammavariate(2.5, 3.2), 0.3), 40.0)
    expected = (
        60_000
        + 190 * sqft
        + 12_000 * bedrooms
        - 1_100 * age
        - 6_500 * distance_km
        + NEIGHBOURHOODS[neighbourhood][1]
    )
    price = max(expected, 50_000) * rng.lognormvariate(0.0, 0.1)
    return {
        "listing_id": f"H{listing_id:04d}",
        "sqft": f"{sqft:.0f}",
        "bedrooms": str(bedrooms),
        "age": f"{age:.0f}",
        "distance_km": f"{distance_km:.1f}",
        "neighbourhood": neighbourhood,
        "price": f"{price:.0f}",
    }


def make_rows(rows: int = ROWS, seed: int = SEED) -> list[dict[str, str]]:
    """All listings, with missing cells and price outliers planted at seeded positions."""
    rng = random.Random(seed)
    table = [make_row(rng, i + 1) for i in range(rows)]
    for index in rng.sample(range(rows), MISSING_ROWS):
        table[index][rng.choice(OPTIONAL)] = ""
    by_price = sorted(range(rows), key=lambda i: -int(table[i]["price"]))
    for index in rng.sample(by_price[: rows // 8], OUTLIER_ROWS):
        table[index]["price"] = f"{int(table[index]['price']) * rng.uniform(1.8, 2.6):.0f}"
    return table


def main() -> None:
    """Write the CSV next to this script."""
    with OUTPUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(make_rows())
    print(f"wrote {ROWS} rows to {OUTPUT}")


if __name__ == "__main__":
    main()
