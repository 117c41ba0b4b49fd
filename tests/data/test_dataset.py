"""train.npz / normalization.npz round trips, clear errors, and reference windowing by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dppo_robot.data.dataset import (
    ChunkDataset,
    Dataset,
    DatasetError,
    denormalize_dataset,
    fit_normalization,
    load_dataset,
    load_normalization_npz,
    normalize_dataset,
    save_dataset,
    save_normalization_npz,
)

LENGTHS = [3, 5, 2]


def _data(with_images: bool = False):
    n = sum(LENGTHS)
    states = np.arange(n, dtype=np.float32)[:, None] * np.array([1.0, 10.0], np.float32)  # row i -> (i, 10 i)
    actions = -np.arange(n, dtype=np.float32)[:, None] * np.ones(3, np.float32)  # row i -> -i
    images = None
    if with_images:
        images = np.zeros((n, 6, 8, 8), np.uint8)
        images[:, :3] = np.arange(n, dtype=np.uint8)[:, None, None, None]  # camera a: value i
        images[:, 3:] = 100 + np.arange(n, dtype=np.uint8)[:, None, None, None]  # camera b: 100 + i
    return states, actions, np.array(LENGTHS), images


def test_round_trip(tmp_path):
    states, actions, lengths, images = _data(True)
    save_dataset(tmp_path / "train.npz", states, actions, lengths, images, ["a", "b"])
    ds = load_dataset(tmp_path)  # a directory means its train.npz
    np.testing.assert_array_equal(ds.states, states)
    np.testing.assert_array_equal(ds.actions, actions)
    assert ds.traj_lengths.tolist() == LENGTHS and ds.offsets.tolist() == [0, 3, 8]
    assert ds.camera_names == ["a", "b"] and ds.images.dtype == np.uint8
    s, a = ds.trajectory(1)
    assert s[:, 0].tolist() == [3, 4, 5, 6, 7] and a.shape == (5, 3)
    first2 = load_dataset(tmp_path / "train.npz", max_n_episodes=2)
    assert first2.n_steps == 8 and first2.images.shape[0] == 8


def test_reference_written_file_loads(tmp_path):
    """A file as the reference's scripts write it: float64 states, plain np.savez, no camera names."""
    states, actions, lengths, _ = _data()
    np.savez(tmp_path / "train.npz", states=states.astype(np.float64), actions=actions, traj_lengths=lengths)
    ds = load_dataset(tmp_path / "train.npz")
    assert ds.states.dtype == np.float32 and ds.n_trajectories == 3 and ds.obs_dim == 2 and ds.action_dim == 3


def test_windows_match_hand_built_indices():
    states, actions, lengths, _ = _data()
    ds = ChunkDataset(Dataset(states, actions, lengths), cond_steps=3, horizon_steps=2)
    # every start with start + Tp <= trajectory end: traj0 rows 0-2, traj1 rows 3-7, traj2 rows 8-9
    expect = [(0, 0), (1, 1), (3, 0), (4, 1), (5, 2), (6, 3), (8, 0)]
    assert ds.indices.tolist() == [list(e) for e in expect]
    assert len(ds) == 7
    hist_rows = {0: [0, 0, 0], 1: [0, 0, 1], 3: [3, 3, 3], 4: [3, 3, 4], 5: [3, 4, 5], 6: [4, 5, 6], 8: [8, 8, 8]}
    for k, (start, _) in enumerate(expect):
        obs, act = ds[k]
        assert obs.dtype == torch.float32 and obs.shape == (3, 2) and act.shape == (2, 3)
        assert obs[:, 0].tolist() == hist_rows[start]
        assert obs[:, 1].tolist() == [10 * r for r in hist_rows[start]]
        assert act[:, 0].tolist() == [-start, -(start + 1)]


def test_short_trajectories_give_no_windows():
    states, actions, lengths, _ = _data()
    ds = ChunkDataset(Dataset(states, actions, lengths), cond_steps=1, horizon_steps=4)
    assert [s for s, _ in ds.indices.tolist()] == [3, 4]  # only traj1 (length 5) is long enough


def test_image_windows_per_camera():
    states, actions, lengths, images = _data(True)
    ds = ChunkDataset(
        Dataset(states, actions, lengths, images, ["a", "b"]), cond_steps=2, horizon_steps=1, use_images=True
    )
    obs, act = ds[4]  # start 4 in traj1 -> history rows [3, 4]
    assert obs["state"][:, 0].tolist() == [3, 4]
    assert set(obs["images"]) == {"a", "b"}
    assert obs["images"]["a"].shape == (2, 3, 8, 8) and obs["images"]["a"].dtype == torch.uint8
    assert obs["images"]["a"][:, 0, 0, 0].tolist() == [3, 4]
    assert obs["images"]["b"][:, 0, 0, 0].tolist() == [103, 104]
    ds1 = ChunkDataset(Dataset(states, actions, lengths, images), 2, 1, use_images=True, img_cond_steps=1)
    assert ds1[4][0]["images"]["camera0"].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="no 'images'"):
        ChunkDataset(Dataset(states, actions, lengths), 1, 1, use_images=True)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"actions": np.zeros((10, 3)), "traj_lengths": np.array([10])}, "missing key 'states'"),
        (
            {"states": np.zeros((9, 2)), "actions": np.zeros((9, 3)), "traj_lengths": np.array([5, 5])},
            "key 'states' has 9 rows but traj_lengths sum to 10",
        ),
        (
            {"states": np.zeros((10, 2, 1)), "actions": np.zeros((10, 3)), "traj_lengths": np.array([10])},
            r"key 'states' has shape \(10, 2, 1\)",
        ),
        (
            {"states": np.zeros((10, 2)), "actions": np.zeros((10, 3)), "traj_lengths": np.array([10, 0])},
            "key 'traj_lengths' has lengths < 1",
        ),
        (
            {"states": np.full((10, 2), np.nan), "actions": np.zeros((10, 3)), "traj_lengths": np.array([10])},
            "key 'states' has non-finite values",
        ),
        (
            {
                "states": np.zeros((10, 2)),
                "actions": np.zeros((10, 3)),
                "traj_lengths": np.array([10]),
                "images": np.zeros((10, 3, 4, 4), np.float32),
            },
            "key 'images' has dtype float32",
        ),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=match) as ei:
        load_dataset(path)
    assert "bad.npz" in str(ei.value)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz"):
        load_dataset(tmp_path / "junk.npz")
    (tmp_path / "d.pkl").write_bytes(b"x")
    with pytest.raises(DatasetError, match="expected a .npz"):
        load_dataset(tmp_path / "d.pkl")


def test_normalization_fit_files_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    states = rng.normal(0, 3, (50, 4)).astype(np.float32)
    states[:, 3] = 2.0  # constant column gets a +-1 range
    actions = rng.uniform(-0.7, 0.9, (50, 2)).astype(np.float32)
    raw = Dataset(states, actions, np.array([20, 30]))
    norm = fit_normalization(raw)
    assert norm.obs_eps == pytest.approx(1e-6) and norm.obs_clip is None
    assert norm.obs_min[3] == 1.0 and norm.obs_max[3] == 3.0
    stored = normalize_dataset(raw, norm)
    assert stored.states.min() >= -1.0 and stored.states.max() <= 1.0
    assert stored.actions.min() == pytest.approx(-1.0) and stored.actions.max() == pytest.approx(1.0)
    back = denormalize_dataset(stored, norm)
    np.testing.assert_allclose(back.states, states, atol=1e-5)
    np.testing.assert_allclose(back.actions, actions, atol=1e-6)
    save_normalization_npz(tmp_path / "normalization.npz", norm)
    with np.load(tmp_path / "normalization.npz") as f:
        assert sorted(f.files) == ["action_max", "action_min", "obs_max", "obs_min"]
    loaded = load_normalization_npz(tmp_path)
    np.testing.assert_array_equal(loaded.obs_min, norm.obs_min)
    assert loaded.obs_eps == pytest.approx(1e-6)
    np.savez(tmp_path / "bad.npz", obs_min=np.zeros(2), obs_max=np.ones(2), action_min=np.zeros(1))
    with pytest.raises(DatasetError, match="bad.npz: missing key 'action_max'"):
        load_normalization_npz(tmp_path / "bad.npz")
