"""The critic warm-up gate: the reference's count, or the critic's explained variance, capped."""

import math

import numpy as np
import pytest

from dppo_robot.rl.critic_warmup import CriticWarmup, explained_variance


def test_explained_variance_matches_its_definition():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    assert explained_variance(y, y) == 1.0
    assert explained_variance(np.full(500, y.mean()), y) == pytest.approx(0.0, abs=1e-12)
    noisy = y + rng.normal(size=500)
    assert explained_variance(noisy, y) == pytest.approx(1 - np.var(y - noisy) / np.var(y))
    assert math.isnan(explained_variance(y, np.ones(500)))


def test_count_only_is_the_reference_rule():
    g = CriticWarmup(min_itr=2)
    assert [g.actor_active(i, float("nan")) for i in range(5)] == [False, False, True, True, True]
    assert (g.started_itr, g.reason) == (2, "count")


def test_threshold_waits_for_a_positive_fit_then_stays_on():
    g = CriticWarmup(min_itr=1, ev_threshold=0.1, max_itr=10)
    evs = [0.5, -0.39, 0.05, float("nan"), 0.2, -1.0, -1.0]  # itr 0 is below the count whatever its fit
    assert [g.actor_active(i, ev) for i, ev in enumerate(evs)] == [False, False, False, False, True, True, True]
    assert (g.started_itr, g.reason) == (4, "explained_variance")


def test_cap_starts_the_actor_and_says_why():
    g = CriticWarmup(min_itr=1, ev_threshold=0.5, max_itr=3)
    assert [g.actor_active(i, -0.2) for i in range(5)] == [False, False, False, True, True]
    assert g.reason == "max_itr"


def test_state_survives_a_resume():
    g = CriticWarmup(min_itr=1, ev_threshold=0.1, max_itr=10)
    for i, ev in enumerate([0.0, 0.0, 0.3]):
        g.actor_active(i, ev)
    h = CriticWarmup(min_itr=1, ev_threshold=0.1, max_itr=10)
    h.load_state_dict(g.state_dict())
    assert h.actor_active(3, -5.0) and not h.actor_active(1, 0.9)  # started at 2: a bad fit later changes nothing


@pytest.mark.parametrize(
    "kw", [{"min_itr": -1}, {"min_itr": 2, "max_itr": 1}, {"min_itr": 0, "ev_threshold": float("nan")}]
)
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError, match="critic warm-up"):
        CriticWarmup(**kw)
