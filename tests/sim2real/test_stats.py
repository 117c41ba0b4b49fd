"""Statistics against known values: published examples, scipy, R's documented example, hand counts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as sps

from dppo_robot.sim2real import stats as S


def test_wilson_16_of_20_matches_the_reference_interval():
    lo, hi = S.wilson(16, 20)
    assert (round(lo, 3), round(hi, 3)) == (0.584, 0.919)


@pytest.mark.parametrize("n", [1, 5, 20, 37])
def test_clopper_pearson_matches_scipy_exact(n):
    for k in range(n + 1):
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert S.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_edge_counts_zero_all_and_no_trials():
    assert S.wilson(0, 10)[0] == 0.0 and S.clopper_pearson(0, 10)[0] == 0.0
    assert S.wilson(10, 10)[1] == 1.0 and S.clopper_pearson(10, 10)[1] == 1.0
    assert 0 < S.wilson(0, 10)[1] < S.clopper_pearson(0, 10)[1] < 1
    for fn in (S.wilson, S.clopper_pearson, S.rate):
        with pytest.raises(S.StatsError, match=r"no trials \(n = 0\)"):
            fn(0, 0)
    with pytest.raises(S.StatsError, match="0 <= successes <= trials"):
        S.clopper_pearson(3, 2)
    with pytest.raises(S.StatsError, match=r"group 2: no trials \(n = 0\)"):
        S.compare(1, 2, 0, 0)
    with pytest.raises(S.StatsError, match="no trials"):
        S.phase_funnel([], ["start", "success"])


# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# method 10 (hybrid score), worked examples (a), (b), (d); (d) is also in the R package ratesci's
# tests ("Newcombe RD example (d)": moverci(type = "wilson") = [-0.0381, 0.1926]).
@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "lo", "hi"),
    [(56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090), (5, 56, 0, 29, -0.0381, 0.1926)],
)
def test_newcombe_hybrid_score_matches_published_examples(k1, n1, k2, n2, lo, hi):
    d, low, high = S.newcombe_interval(k1, n1, k2, n2)
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (round(low, 4), round(high, 4)) == (lo, hi)


def test_newcombe_edge_cases_stay_in_range():
    d, lo, hi = S.newcombe_interval(20, 20, 0, 20)
    assert d == 1.0 and 0 < lo < 1 and hi == pytest.approx(1.0)
    d, lo, hi = S.newcombe_interval(0, 20, 0, 20)
    assert d == 0.0 and lo < 0 < hi and lo == pytest.approx(-hi)


def test_fisher_exact_matches_scipy_on_every_small_table():
    for n1, n2 in ((5, 5), (7, 12), (20, 20)):
        for k1, k2 in itertools.product(range(n1 + 1), range(n2 + 1)):
            want = sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
            assert S.fisher_exact_p(k1, n1, k2, n2) == pytest.approx(want, rel=1e-9, abs=1e-15), (k1, n1, k2, n2)


def test_phase_funnel_counts_highest_phase_reached():
    steps = S.phase_funnel([0, 1, 2, 2, 3], ["start", "a", "b", "c"])
    assert [(s.phase, s.name, s.reached, s.trials) for s in steps] == [(1, "a", 4, 5), (2, "b", 3, 5), (3, "c", 1, 5)]
    assert (steps[0].low, steps[0].high) == pytest.approx(S.wilson(4, 5))
    with pytest.raises(S.StatsError, match="phase 4 reached but only 4 phase names"):
        S.phase_funnel([4], ["start", "a", "b", "c"])


def test_pearson_matches_scipy_and_mmrv_matches_hand_counts():
    sim, real = [0.9, 0.5, 0.1, 0.7], [0.2, 0.6, 0.8, 0.5]
    assert S.pearson(sim, real) == pytest.approx(sps.pearsonr(sim, real).statistic)
    assert math.isnan(S.pearson([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))
    # same order: no violation; reversed order of 3: per policy max |real_i - real_j| = 0.6, 0.4, 0.6
    assert S.mmrv([0.1, 0.5, 0.9], [0.2, 0.6, 0.8]) == 0.0
    assert S.mmrv([0.9, 0.5, 0.1], [0.2, 0.6, 0.8]) == pytest.approx((0.6 + 0.4 + 0.6) / 3)
    # one swapped pair (policies 1 and 2): each of them is violated by 0.1, policy 0 by nothing
    assert S.mmrv([0.1, 0.6, 0.5], [0.1, 0.5, 0.6]) == pytest.approx(0.2 / 3)
    ra = S.rank_agreement(["a", "b", "c"], [0.1, 0.5, 0.9], [0.2, 0.6, 0.8])
    assert ra.mmrv == 0.0 and ra.pearson > 0.9
    with pytest.raises(S.StatsError, match="at least 3 policies"):
        S.rank_agreement(["a", "b"], [0.1, 0.2], [0.1, 0.2])


def test_planner_matches_power_prop_test_and_exact_fisher_power():
    # R documentation of stats::power.prop.test: power.prop.test(p1 = .50, p2 = .75, power = .90) -> n = 76.7
    assert round(S.trials_per_arm_normal(0.5, 0.75, 0.05, 0.9), 1) == 76.7
    # exact power by full enumeration with scipy's Fisher test, n = 8 per arm
    n, p1, p2 = 8, 0.9, 0.3
    want = sum(
        sps.binom.pmf(k1, n, p1) * sps.binom.pmf(k2, n, p2)
        for k1 in range(n + 1)
        for k2 in range(n + 1)
        if sps.fisher_exact([[k1, n - k1], [k2, n - k2]]).pvalue <= 0.05
    )
    assert S.fisher_power(n, p1, p2) == pytest.approx(want, rel=1e-9)
    plan = S.plan_trials(0.8, 0.5)
    assert plan.n_fisher is not None and plan.n_fisher >= plan.n_normal * 0.8
    assert plan.fisher_power_at_n >= 0.8 > S.fisher_power(plan.n_fisher - 1, 0.8, 0.5)
    # the reference's hardware batch: 20 trials per arm cannot resolve 80% vs 60% (needs far more)
    assert S.plan_for_gap(0.2, base=0.8).n_normal > 20
    assert S.fisher_power(20, 0.8, 0.6) < 0.5
    with pytest.raises(S.StatsError, match="no gap"):
        S.plan_trials(0.5, 0.5)


def test_wilson_is_the_shared_implementation():
    from dppo_robot.confidence import wilson_interval

    assert S.wilson(7, 13) == wilson_interval(7, 13)
    assert np.isfinite(S.z_of(0.9)) and S.z_of(0.95) == pytest.approx(1.959963984540054)
