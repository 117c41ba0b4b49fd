"""Statistics of success rates for sim-to-real comparisons (pure numpy/scipy, no ROS).

Single rates: Wilson score (dppo_robot.confidence) and Clopper-Pearson exact intervals.
Two rates: the Newcombe hybrid score interval for p1 - p2 (method 10 of Newcombe 1998, built
from the two Wilson intervals) and Fisher's exact test. Several policies in two settings:
Pearson correlation and the mean maximum rank violation (MMRV) of SIMPLER (Li et al. 2024).
Planning: trials per arm for a two-sided test of p1 vs p2 at a given power (normal
approximation as R's power.prop.test, refined by the exact power of Fisher's test).

Counts are validated: 0 <= k <= n; n = 0 raises StatsError with a message saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from dppo_robot.confidence import wilson_interval


class StatsError(ValueError):
    """Counts or inputs a statistic cannot be computed from; the message says why."""


def z_of(confidence: float) -> float:
    """Two-sided normal quantile of a confidence level (0.95 -> 1.95996)."""
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def check_counts(successes: int, trials: int, what: str = "") -> None:
    """Raise StatsError unless 0 <= successes <= trials and trials >= 1."""
    label = f"{what}: " if what else ""
    if isinstance(successes, bool) or isinstance(trials, bool):
        raise StatsError(f"{label}counts must be integers, got {successes!r}/{trials!r}")
    if trials == 0:
        raise StatsError(f"{label}no trials (n = 0): a success rate needs at least one trial")
    if trials < 0 or not 0 <= successes <= trials:
        raise StatsError(f"{label}need 0 <= successes <= trials, got {successes}/{trials}")


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (dppo_robot.confidence.wilson_interval) with n = 0 an error."""
    check_counts(successes, trials)
    return wilson_interval(successes, trials, z_of(confidence))


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson exact interval: beta quantiles; [0, ...] at 0/n and [..., 1] at n/n."""
    check_counts(successes, trials)
    a = 1 - confidence
    k, n = successes, trials
    lo = 0.0 if k == 0 else float(sps.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Rate:
    """k of n with its Wilson and Clopper-Pearson intervals."""

    successes: int
    trials: int
    wilson: tuple[float, float]
    clopper_pearson: tuple[float, float]
    confidence: float = 0.95

    @property
    def rate(self) -> float:
        return self.successes / self.trials

    def as_dict(self) -> dict:
        return {
            "successes": self.successes,
            "trials": self.trials,
            "rate": self.rate,
            "wilson": list(self.wilson),
            "clopper_pearson": list(self.clopper_pearson),
            "confidence": self.confidence,
        }


def rate(successes: int, trials: int, confidence: float = 0.95) -> Rate:
    return Rate(
        successes,
        trials,
        wilson(successes, trials, confidence),
        clopper_pearson(successes, trials, confidence),
        confidence,
    )


@dataclass(frozen=True)
class Difference:
    """p1 - p2 with its Newcombe hybrid score interval and Fisher's exact two-sided p-value."""

    diff: float
    low: float
    high: float
    fisher_p: float
    confidence: float = 0.95

    @property
    def resolved(self) -> bool:
        """The interval excludes zero."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {
            "diff": self.diff,
            "newcombe": [self.low, self.high],
            "fisher_p": self.fisher_p,
            "resolved": self.resolved,
            "confidence": self.confidence,
        }


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's hybrid score interval (1998, method 10) from Wilson intervals."""
    check_counts(k1, n1, "group 1")
    check_counts(k2, n2, "group 2")
    z = z_of(confidence)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)


def _hypergeom_pmf(m: int, n1: int, n2: int) -> tuple[np.ndarray, np.ndarray]:
    """Support k1 and pmf of group 1's successes given m successes in all (margins fixed)."""
    ks = np.arange(max(0, m - n2), min(n1, m) + 1)
    return ks, sps.hypergeom.pmf(ks, n1 + n2, n1, m)


# Tables whose probability is within this relative tolerance of the observed one count as
# "as extreme" (floating-point ties; scipy.stats.fisher_exact uses the same idea).
_TIE_RTOL = 1e-7


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test of the 2x2 table [[k1, n1-k1], [k2, n2-k2]]."""
    check_counts(k1, n1, "group 1")
    check_counts(k2, n2, "group 2")
    ks, pmf = _hypergeom_pmf(k1 + k2, n1, n2)
    p_obs = pmf[k1 - ks[0]]
    return float(min(1.0, pmf[pmf <= p_obs * (1 + _TIE_RTOL)].sum()))


def compare(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> Difference:
    d, lo, hi = newcombe_interval(k1, n1, k2, n2, confidence)
    return Difference(d, lo, hi, fisher_exact_p(k1, n1, k2, n2), confidence)


@dataclass(frozen=True)
class FunnelStep:
    """Trials that reached at least `phase` (in order), with the Wilson interval of that fraction."""

    phase: int
    name: str
    reached: int
    trials: int
    low: float
    high: float

    def as_dict(self) -> dict:
        return {
            "phase": self.phase,
            "name": self.name,
            "reached": self.reached,
            "trials": self.trials,
            "rate": self.reached / self.trials,
            "wilson": [self.low, self.high],
        }


def phase_funnel(phases: Sequence[int], names: Sequence[str], confidence: float = 0.95) -> list[FunnelStep]:
    """For phases 1..len(names)-1: how many trials reached at least that phase (names[0] = start)."""
    n = len(phases)
    if n == 0:
        raise StatsError("phase funnel: no trials (n = 0)")
    top = max(phases)
    if top >= len(names):
        raise StatsError(f"phase funnel: phase {top} reached but only {len(names)} phase names {list(names)}")
    out = []
    for k in range(1, len(names)):
        r = sum(1 for p in phases if p >= k)
        lo, hi = wilson(r, n, confidence)
        out.append(FunnelStep(k, names[k], r, n, lo, hi))
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of paired values; nan when either side has no spread."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if a.shape != b.shape or a.ndim != 1:
        raise StatsError(f"pearson: need two equal-length vectors, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise StatsError(f"pearson: need at least 2 pairs, got {len(a)}")
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float((da * da).sum() * (db * db).sum()))
    return float((da * db).sum() / den) if den > 0 else float("nan")


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation (SIMPLER, Li et al. 2024), in units of real success rate.

    For each policy i: the largest |real_i - real_j| over the policies j that sim orders
    differently from real ((sim_i > sim_j) != (real_i > real_j)); averaged over i. 0 = sim ranks
    the policies as real does; as in SIMPLER's simpler_env/utils/metrics.py.
    """
    s, r = np.asarray(sim, float), np.asarray(real, float)
    if s.shape != r.shape or s.ndim != 1:
        raise StatsError(f"mmrv: need two equal-length vectors, got {s.shape} and {r.shape}")
    if len(s) < 2:
        raise StatsError(f"mmrv: need at least 2 policies, got {len(s)}")
    flip = (s[:, None] > s[None, :]) != (r[:, None] > r[None, :])
    viol = np.abs(r[:, None] - r[None, :]) * flip
    return float(viol.max(axis=1).mean())


@dataclass(frozen=True)
class RankAgreement:
    policies: list[str]
    sim: list[float]
    real: list[float]
    pearson: float
    mmrv: float

    def as_dict(self) -> dict:
        return {
            "policies": self.policies,
            "sim": self.sim,
            "real": self.real,
            "pearson": self.pearson,
            "mmrv": self.mmrv,
        }


MIN_POLICIES_FOR_RANKS = 3


def rank_agreement(policies: Sequence[str], sim: Sequence[float], real: Sequence[float]) -> RankAgreement:
    """Pearson and MMRV of per-policy success rates in two settings (needs >= 3 policies)."""
    if len(policies) < MIN_POLICIES_FOR_RANKS:
        raise StatsError(
            f"rank agreement needs at least {MIN_POLICIES_FOR_RANKS} policies in both settings, got {len(policies)}"
        )
    return RankAgreement(
        list(policies), list(map(float, sim)), list(map(float, real)), pearson(sim, real), mmrv(sim, real)
    )


# ------------------------------------------------------------------------------------ planning
def trials_per_arm_normal(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Trials per arm for a two-sided test of p1 vs p2 (normal approximation; R's power.prop.test)."""
    _check_plan(p1, p2, alpha, power)
    za = sps.norm.ppf(1 - alpha / 2)
    zb = sps.norm.ppf(power)
    q1, q2 = 1 - p1, 1 - p2
    pbar = (p1 + p2) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * q1 + p2 * q2)
    return float((num / (p1 - p2)) ** 2)


def _check_plan(p1: float, p2: float, alpha: float, power: float) -> None:
    for name, v in (("p1", p1), ("p2", p2)):
        if not 0 <= v <= 1:
            raise StatsError(f"{name} must be a rate in [0, 1], got {v}")
    if p1 == p2:
        raise StatsError(f"p1 and p2 are equal ({p1}): no gap to resolve")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise StatsError(f"power must be in (0, 1), got {power}")


def fisher_power(n: int, p1: float, p2: float, alpha: float = 0.05) -> float:
    """Exact power of the two-sided Fisher test at alpha with n trials in each arm (full enumeration)."""
    if n < 1:
        raise StatsError(f"fisher_power: n must be >= 1, got {n}")
    k = np.arange(n + 1)
    b1 = sps.binom.pmf(k, n, p1)
    b2 = sps.binom.pmf(k, n, p2)
    reject = np.zeros((n + 1, n + 1), bool)  # [k1, k2]
    for m in range(2 * n + 1):
        ks, pmf = _hypergeom_pmf(m, n, n)
        # p-value of each table in this margin: mass of the tables no more likely than it
        order = np.argsort(pmf)
        sorted_p = pmf[order]
        cum = np.cumsum(sorted_p)
        idx = np.searchsorted(sorted_p, pmf * (1 + _TIE_RTOL), side="right") - 1
        pvals = cum[idx]
        reject[ks, m - ks] = pvals <= alpha
    return float(b1 @ reject.astype(float) @ b2)


@dataclass(frozen=True)
class TrialPlan:
    """Trials per arm to resolve p1 vs p2 at the given power."""

    p1: float
    p2: float
    alpha: float
    power: float
    n_normal: int  # normal approximation (power.prop.test), rounded up
    n_fisher: int | None  # smallest n at which Fisher's exact test reaches the power (None: beyond max_n)
    fisher_power_at_n: float | None

    def as_dict(self) -> dict:
        return {
            "p1": self.p1,
            "p2": self.p2,
            "alpha": self.alpha,
            "power": self.power,
            "n_normal": self.n_normal,
            "n_fisher": self.n_fisher,
            "fisher_power_at_n": self.fisher_power_at_n,
        }


def plan_trials(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 300) -> TrialPlan:
    """Trials per arm: the normal approximation, then the smallest n from half of it up at which Fisher's
    exact test reaches the power (searched only when the approximation is <= max_n)."""
    n_norm = math.ceil(trials_per_arm_normal(p1, p2, alpha, power))
    n_exact, pw = None, None
    n = max(2, n_norm // 2)
    while n <= max_n and n_norm <= max_n:
        pw_n = fisher_power(n, p1, p2, alpha)
        if pw_n >= power:
            n_exact, pw = n, pw_n
            break
        n += 1
    return TrialPlan(p1, p2, alpha, power, n_norm, n_exact, pw)


def plan_for_gap(gap: float, base: float = 0.5, alpha: float = 0.05, power: float = 0.8, max_n: int = 300) -> TrialPlan:
    """Trials per arm to resolve a drop of `gap` from success rate `base` (base 0.5 is the worst case)."""
    if not 0 < gap <= base:
        raise StatsError(f"gap must be in (0, base={base}], got {gap}")
    return plan_trials(base, base - gap, alpha, power, max_n)
