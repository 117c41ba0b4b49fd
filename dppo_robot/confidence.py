"""Confidence intervals for success rates (binomial proportions).

Wilson score intervals: well-behaved at 0/n and n/n and for the 20-trial hardware batches
robot learning runs (where the normal approximation is useless). 20 trials give a 95% interval
about +-0.2 wide, so gaps under ~30 points are not resolvable at that size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    """k successes of n trials with its Wilson interval [low, high] at the given confidence."""

    successes: int
    trials: int
    low: float
    high: float
    confidence: float = 0.95

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    def __str__(self) -> str:
        return f"{self.successes}/{self.trials} = {self.rate:.2f} [{self.low:.2f}, {self.high:.2f}]"


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of successes/trials; (nan, nan) for no trials."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes ({successes}) <= trials ({trials})")
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # exactly 0 at 0/n and 1 at n/n (rounding would leave e.g. 0.9999999999999999)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def proportion(successes: int, trials: int, z: float = Z_95) -> Proportion:
    lo, hi = wilson_interval(successes, trials, z)
    return Proportion(successes, trials, lo, hi)
