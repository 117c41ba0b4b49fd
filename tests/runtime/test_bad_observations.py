"""predict() never returns a non-finite action without raising; observations are checked against the
manifest's range (reject / clip / warn); ragged and empty inputs are one-line errors (issue 18, findings 1, 10).
Real bundles (the committed lift_dppo has no obs_clip in its graph), real onnxruntime."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dppo_robot.runtime import errors as E  # module access: the file collects on older code too
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig

LIFT = Path(__file__).resolve().parents[2] / "policies" / "lift_dppo"


def _runtime(bundle: Path, **kw) -> PolicyRuntime:
    return PolicyRuntime(bundle, RuntimeConfig(warmup_iters=0, **kw))


def _mid(rt: PolicyRuntime) -> np.ndarray:
    m = rt.manifest
    return np.broadcast_to(rt._mid_obs(), (m.cond_steps, m.obs_dim)).copy()


def _noise(rt: PolicyRuntime, seed: int = 0) -> np.ndarray:
    m = rt.manifest
    return np.random.default_rng(seed).standard_normal((1, rt.noise_steps, m.horizon_steps, m.action_dim), np.float32)


@pytest.mark.parametrize("value", [1e38, 3e38, -3e38])
def test_huge_finite_observation_never_gives_silent_nan(value):
    rt = _runtime(LIFT)  # default policy "warn": the value reaches the graph
    obs = _mid(rt)
    obs[0, 0] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ObservationRangeWarning)
        try:
            actions = rt.predict(obs, noise=_noise(rt))
        except E.NonFiniteActionError as e:
            assert "non-finite actions" in str(e) and "\n" not in str(e)
            return
    assert np.all(np.isfinite(actions)), "predict returned non-finite actions without raising"


def test_non_finite_noise_is_refused(mlp_bundle):
    rt = _runtime(mlp_bundle)
    noise = _noise(rt)
    for bad in (np.nan, np.inf):
        noise[0, 0, 0, 0] = bad
        with pytest.raises(E.ObservationError, match="noise has non-finite values"):
            rt.predict(_mid(rt), noise=noise)


def test_observation_range_policy_reject_clip_warn():
    obs = None
    rt = _runtime(LIFT, obs_range="reject")
    obs = _mid(rt)
    obs[0, 3] = 1e30  # robot0_eef_quat
    with pytest.raises(E.ObservationError, match="dim 3, slice 'robot0_eef_quat' = 1e\\+30 .* outside") as e:
        rt.predict(obs, noise=_noise(rt))
    assert "\n" not in str(e.value)

    rt = _runtime(LIFT, obs_range="clip")
    with pytest.warns(E.ObservationRangeWarning, match="clipped into it"):
        clipped = rt.predict(obs, noise=_noise(rt))
    at_edge = obs.copy()
    at_edge[0, 3] = rt.obs_hi[3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dim 3 already warned about once: no second warning
        assert np.array_equal(clipped, rt.predict(at_edge.astype(np.float32), noise=_noise(rt)))
    assert rt.out_of_range_calls == 1

    rt = _runtime(LIFT)  # the default is "warn"
    assert rt.config.obs_range == "warn"
    with pytest.warns(E.ObservationRangeWarning, match="passed on unchanged"):
        try:
            actions = rt.predict(obs, noise=_noise(rt))
            assert np.all(np.isfinite(actions))
        except E.NonFiniteActionError:
            pass
    # in range: no warning, no count
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rt.predict(_mid(rt), noise=_noise(rt))
    assert rt.out_of_range_calls == 1


def test_runtime_config_range_fields_are_checked():
    for kw in ({"obs_range_margin": float("nan")}, {"obs_range_margin": -1.0}, {"obs_range_min_span": -0.1}):
        with pytest.raises(ValueError, match="must be finite and >= 0"):
            _runtime(LIFT, **kw)


def test_ragged_list_and_empty_batch_are_one_line_errors(mlp_bundle):
    rt = _runtime(mlp_bundle)
    with pytest.raises(E.ObservationError, match="input 'obs' is not an array of one shape \\(a ragged list\\?\\)"):
        rt.predict([[0.0] * 5, [0.0] * 4])
    with pytest.raises(E.ObservationError, match="input 'obs' has an empty batch"):
        rt.predict(np.zeros((0, 2, 5), np.float32))
    with pytest.raises(E.ObservationError, match="input 'noise' has an empty batch"):
        rt.predict(np.zeros((2, 5), np.float32), noise=np.zeros((0, 1, 4, 3), np.float32))
