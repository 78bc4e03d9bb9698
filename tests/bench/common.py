"""What every benchmark script shares: percentiles and writing its JSON."""

from __future__ import annotations

import json
import os


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; ``values`` must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def write_results(path: str, results: list[dict]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"written {path}")
