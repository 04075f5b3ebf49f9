"""A notebook-style pipeline: steps wired by calling them inside ``with Pipeline() as p:``.

Read it as a notebook's cells, top to bottom. Each ``# %%`` cell would be one notebook
cell (VS Code and Jupytext run such files cell by cell). Inside the ``with`` block,
calling a step does not run it: it adds a node to the pipeline and returns a *handle*,
which wires the next call. ``param(...)`` declares a run-time param; plain values passed to
a call are bound as constants; ``a >> b`` orders two steps without passing data.

Run it as a script::

    python examples/notebook_style.py
"""

from __future__ import annotations

import statistics

from plait import Pipeline, param, step

# %% The steps: plain functions, unit-testable on their own.


@step
def readings(days: int) -> list[float]:
    """A made-up temperature series with a weekly rhythm."""
    return [round(12 + 6 * ((d % 7) / 6) + 0.5 * (d % 3), 2) for d in range(days)]


@step
def smooth(values: list[float], window: int) -> list[float]:
    """Moving average over ``window`` values."""
    return [
        round(statistics.fmean(values[max(0, i - window + 1) : i + 1]), 2)
        for i in range(len(values))
    ]


@step
def describe(values: list[float]) -> dict[str, float]:
    """Mean, spread and range."""
    return {
        "mean": round(statistics.fmean(values), 2),
        "stdev": round(statistics.stdev(values), 2),
        "min": min(values),
        "max": max(values),
    }


@step(outputs=[])
def announce() -> None:
    """A side effect that must come first (an ordering-only edge)."""
    print("starting the analysis")


assert smooth([1.0, 2.0, 3.0], 2) == [1.0, 1.5, 2.5]  # steps are still plain functions

# %% Wire them by calling them inside the block.

with Pipeline("temperatures") as p:
    days = param("days", int, default=28)
    raw = readings(days=days)
    smoothed = smooth.with_options(name="weekly")(values=raw, window=7)  # 7: a constant
    raw_stats = describe.with_options(name="raw_stats")(values=raw)
    smooth_stats = describe.with_options(name="smooth_stats")(values=smoothed)
    announce() >> raw  # announce runs before readings

print(p.to_ascii())

# %% Run it, look at the values and at every step's record.

result = p.run(params={"days": 56})
print(result.summary())
print("raw:     ", result["raw_stats"])
print("smoothed:", result["smooth_stats"])

# %% Smoothing keeps the mean and shrinks the spread.

assert abs(result["smooth_stats"]["mean"] - result["raw_stats"]["mean"]) < 0.5
assert result["smooth_stats"]["stdev"] < result["raw_stats"]["stdev"]
print("smoothing kept the mean and shrank the spread")
