"""Demonstration datasets in the reference layout, normalisation files, and the BC window dataset.

Files (irom-princeton/dppo; agent/dataset/sequence.py reads them):
    train.npz          states [sum T, Do] float, actions [sum T, Da] float, traj_lengths [N] int,
                       images [sum T, C, H, W] uint8 for pixel tasks (C = 3 x cameras,
                       cameras stacked along channels in order). Optional camera_names [n_cams] str.
    normalization.npz  obs_min, obs_max [Do], action_min, action_max [Da] (robomimic convention:
                       obs_n = 2 * (obs - obs_min) / (obs_max - obs_min + 1e-6) - 1, no clip;
                       action = (a_n + 1) / 2 * (action_max - action_min) + action_min).

As in the reference (script/dataset/process_robomimic_dataset.py --normalize), the states and
actions stored in a train.npz that has a normalization.npz beside it are already normalised
to [-1, 1]: a policy trains on them as they are, and the env wrapper normalises observations
and denormalises actions with normalization.npz. `collect_demos` writes that layout;
`normalize_dataset` / `denormalize_dataset` convert between env units and it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dppo_robot.model.normalization import Normalization

ROBOMIMIC_OBS_EPS = 1e-6
NORMALIZATION_KEYS = ("obs_min", "obs_max", "action_min", "action_max")


class DatasetError(ValueError):
    """A dataset or normalisation file that cannot be used; the message names file and key."""


@dataclass
class Dataset:
    """Stitched trajectories: rows of trajectory i are [offsets[i], offsets[i] + traj_lengths[i])."""

    states: np.ndarray  # [sum T, Do] float32
    actions: np.ndarray  # [sum T, Da] float32
    traj_lengths: np.ndarray  # [N] int64
    images: np.ndarray | None = None  # [sum T, C, H, W] uint8
    camera_names: list[str] | None = None
    path: Path | None = None

    @property
    def n_trajectories(self) -> int:
        return int(self.traj_lengths.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.states.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.states.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def offsets(self) -> np.ndarray:
        """Start row of each trajectory, [N]."""
        return np.concatenate([[0], np.cumsum(self.traj_lengths)[:-1]]).astype(np.int64)

    def trajectory(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start = int(self.offsets[i])
        stop = start + int(self.traj_lengths[i])
        return self.states[start:stop], self.actions[start:stop]


def _check(
    where: str,
    states: np.ndarray,
    actions: np.ndarray,
    traj_lengths: np.ndarray,
    images: np.ndarray | None,
    camera_names: list[str] | None = None,
) -> None:
    if states.ndim != 2:
        raise DatasetError(f"{where}: key 'states' has shape {states.shape}; expected [sum T, Do]")
    if actions.ndim != 2:
        raise DatasetError(f"{where}: key 'actions' has shape {actions.shape}; expected [sum T, Da]")
    if traj_lengths.ndim != 1 or traj_lengths.shape[0] == 0:
        raise DatasetError(f"{where}: key 'traj_lengths' has shape {traj_lengths.shape}; expected [N >= 1]")
    if not np.issubdtype(traj_lengths.dtype, np.integer) and not np.all(traj_lengths == np.round(traj_lengths)):
        raise DatasetError(f"{where}: key 'traj_lengths' holds non-integers ({traj_lengths.dtype})")
    if np.any(traj_lengths < 1):
        bad = np.nonzero(traj_lengths < 1)[0][:5].tolist()
        raise DatasetError(f"{where}: key 'traj_lengths' has lengths < 1 at trajectories {bad}")
    total = int(np.sum(traj_lengths))
    for key, arr in (("states", states), ("actions", actions)):
        if arr.shape[0] != total:
            raise DatasetError(
                f"{where}: key '{key}' has {arr.shape[0]} rows but traj_lengths sum to {total} "
                f"({traj_lengths.shape[0]} trajectories)"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise DatasetError(f"{where}: key '{key}' has dtype {arr.dtype}; expected floats")
        if not np.all(np.isfinite(arr)):
            rows = np.nonzero(~np.all(np.isfinite(arr), axis=1))[0][:5].tolist()
            raise DatasetError(f"{where}: key '{key}' has non-finite values (rows {rows})")
    if images is not None:
        if images.ndim != 4 or images.shape[1] % 3 != 0:
            raise DatasetError(f"{where}: key 'images' has shape {images.shape}; expected [sum T, 3 x cameras, H, W]")
        if images.shape[0] != total:
            raise DatasetError(f"{where}: key 'images' has {images.shape[0]} rows but traj_lengths sum to {total}")
        if images.dtype != np.uint8:
            raise DatasetError(f"{where}: key 'images' has dtype {images.dtype}; expected uint8")
        if camera_names is not None and len(camera_names) * 3 != images.shape[1]:
            raise DatasetError(
                f"{where}: key 'camera_names' names {len(camera_names)} cameras but 'images' has "
                f"{images.shape[1]} channels"
            )


def save_dataset(
    path: str | Path,
    states: np.ndarray,
    actions: np.ndarray,
    traj_lengths: np.ndarray,
    images: np.ndarray | None = None,
    camera_names: list[str] | None = None,
) -> Path:
    """Write a train.npz (arrays as given; see the module docstring for what they should hold)."""
    path = Path(path)
    states = np.asarray(states, np.float32)
    actions = np.asarray(actions, np.float32)
    traj_lengths = np.asarray(traj_lengths, np.int64)
    _check(str(path), states, actions, traj_lengths, images, camera_names)
    arrays: dict[str, np.ndarray] = {"states": states, "actions": actions, "traj_lengths": traj_lengths}
    if images is not None:
        arrays["images"] = np.asarray(images, np.uint8)
        if camera_names is not None:
            arrays["camera_names"] = np.asarray(camera_names, dtype=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez(f, **arrays)
    return path


def load_dataset(path: str | Path, max_n_episodes: int | None = None) -> Dataset:
    """Read a train.npz (ours or the reference's); a directory means its train.npz.

    max_n_episodes keeps the first episodes only (the reference's max_n_episodes).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "train.npz"
    if not path.is_file():
        raise DatasetError(f"{path}: dataset file not found")
    if path.suffix != ".npz":
        raise DatasetError(f"{path}: expected a .npz file (the reference's .pkl datasets are not read)")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            for key in ("states", "actions", "traj_lengths"):
                if key not in files:
                    raise DatasetError(f"{path}: missing key '{key}' (has {sorted(files)})")
            traj_lengths = np.asarray(data["traj_lengths"]).astype(np.int64, copy=False).reshape(-1)
            raw_lengths = np.asarray(data["traj_lengths"])
            states = np.asarray(data["states"])
            actions = np.asarray(data["actions"])
            images = np.asarray(data["images"]) if "images" in files else None
            cams = [str(c) for c in data["camera_names"]] if "camera_names" in files else None
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    _check(str(path), states, actions, raw_lengths.reshape(-1), images, cams)
    if max_n_episodes is not None:
        traj_lengths = traj_lengths[:max_n_episodes]
        total = int(traj_lengths.sum())
        states, actions = states[:total], actions[:total]
        images = None if images is None else images[:total]
    return Dataset(
        np.ascontiguousarray(states, np.float32),
        np.ascontiguousarray(actions, np.float32),
        traj_lengths,
        images,
        cams,
        path,
    )


def fit_normalization(dataset: Dataset, obs_clip: float | None = None) -> Normalization:
    """Min/max statistics of an env-unit dataset in the robomimic convention (obs_eps 1e-6).

    Columns whose range is under 1e-6 are widened by +-1 (as Normalization.fit) so a constant
    column cannot blow up under normalisation.
    """

    def rng(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = x.min(0).astype(np.float64), x.max(0).astype(np.float64)
        narrow = hi - lo < 1e-6
        return lo - narrow, hi + narrow

    omin, omax = rng(dataset.states)
    amin, amax = rng(dataset.actions)
    return Normalization(omin, omax, amin, amax, ROBOMIMIC_OBS_EPS, obs_clip)


def normalize_dataset(dataset: Dataset, norm: Normalization) -> Dataset:
    """Env units -> the stored (reference) layout: states and actions in [-1, 1]."""
    return replace(
        dataset, states=norm.normalize_obs(dataset.states), actions=norm.normalize_action(dataset.actions), path=None
    )


def denormalize_dataset(dataset: Dataset, norm: Normalization) -> Dataset:
    """The stored (reference) layout -> env units (inverse of normalize_dataset where obs are unclipped)."""
    scale = norm.obs_max - norm.obs_min + np.float32(norm.obs_eps)
    states = ((dataset.states + 1.0) / 2.0 * scale + norm.obs_min).astype(np.float32)
    return replace(dataset, states=states, actions=norm.denormalize_action(dataset.actions), path=None)


def save_normalization_npz(path: str | Path, norm: Normalization) -> Path:
    """normalization.npz with obs_min, obs_max, action_min, action_max (as the reference writes it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, obs_min=norm.obs_min, obs_max=norm.obs_max, action_min=norm.action_min, action_max=norm.action_max)
    return path


def load_normalization_npz(path: str | Path, obs_clip: float | None = None) -> Normalization:
    """A robomimic-convention normalization.npz (obs_eps 1e-6; the reference clamps only if clamp_obs)."""
    path = Path(path)
    if path.is_dir():
        path = path / "normalization.npz"
    if not path.is_file():
        raise DatasetError(f"{path}: normalization file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in NORMALIZATION_KEYS if k not in data.files]
            if missing:
                raise DatasetError(f"{path}: missing key '{missing[0]}' (has {sorted(data.files)})")
            arrays = {k: np.asarray(data[k]) for k in NORMALIZATION_KEYS}
    except DatasetError:
        raise
    except Exception as e:
        raise DatasetError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for k, v in arrays.items():
        if v.ndim != 1:
            raise DatasetError(f"{path}: key '{k}' has shape {v.shape}; expected a vector")
    try:
        return Normalization(
            arrays["obs_min"],
            arrays["obs_max"],
            arrays["action_min"],
            arrays["action_max"],
            ROBOMIMIC_OBS_EPS,
            obs_clip,
        )
    except ValueError as e:
        raise DatasetError(f"{path}: {e}") from None


class ChunkDataset(torch.utils.data.Dataset):
    """(obs history, action chunk) windows, exactly as the reference's StitchedSequenceDataset.

    irom-princeton/dppo agent/dataset/sequence.py (v0.8): a window starts at every step `start`
    of a trajectory with start + Tp <= trajectory end (make_indices: max_start = traj_start +
    T - Tp); no window runs past the end, so there is no action padding and trajectories
    shorter than Tp give none. The action chunk is actions[start : start + Tp]; the obs history
    is states[start - To + 1 .. start], oldest first, where steps before the trajectory start
    repeat its first state (states[max(num_before_start - t, 0)]). Images (pixel datasets) take
    the last img_cond_steps of the same history.

    Items: (obs, actions [Tp, Da]) with obs = states [To, Do] (float32 tensors), or for pixel
    datasets with use_images, obs = {"state": [To, Do], "images": {camera: uint8 [To_img, 3, H, W]}}.
    """

    def __init__(
        self,
        dataset: Dataset,
        cond_steps: int,
        horizon_steps: int,
        use_images: bool = False,
        img_cond_steps: int | None = None,
        camera_names: list[str] | None = None,
    ) -> None:
        if cond_steps < 1 or horizon_steps < 1:
            raise ValueError(f"cond_steps {cond_steps} and horizon_steps {horizon_steps} must be >= 1")
        self.cond_steps = cond_steps
        self.horizon_steps = horizon_steps
        self.img_cond_steps = cond_steps if img_cond_steps is None else img_cond_steps
        if self.img_cond_steps > cond_steps:
            raise ValueError(f"img_cond_steps {self.img_cond_steps} must be <= cond_steps {cond_steps}")
        self.use_images = use_images
        if use_images and dataset.images is None:
            raise ValueError(f"{dataset.path or 'dataset'}: use_images but it has no 'images'")
        self.indices = self.make_indices(dataset.traj_lengths, horizon_steps)
        self.states = torch.from_numpy(np.ascontiguousarray(dataset.states, np.float32))
        self.actions = torch.from_numpy(np.ascontiguousarray(dataset.actions, np.float32))
        self.images = None
        self.camera_names: list[str] = []
        if use_images:
            n_cams = dataset.images.shape[1] // 3
            names = camera_names or dataset.camera_names or [f"camera{i}" for i in range(n_cams)]
            if len(names) != n_cams:
                raise ValueError(f"{len(names)} camera names for {n_cams} cameras in 'images'")
            self.camera_names = list(names)
            self.images = torch.from_numpy(dataset.images)

    @staticmethod
    def make_indices(traj_lengths: np.ndarray, horizon_steps: int) -> np.ndarray:
        """[M, 2] int64 rows (start, num_before_start): the reference's make_indices."""
        out = []
        cur = 0
        for length in np.asarray(traj_lengths, np.int64).tolist():
            max_start = cur + length - horizon_steps
            out.extend((i, i - cur) for i in range(cur, max_start + 1))
            cur += length
        return np.asarray(out, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def _history(self, start: int, num_before_start: int, steps: int) -> torch.Tensor:
        rows = [start - min(t, num_before_start) for t in reversed(range(steps))]
        return torch.as_tensor(rows, dtype=torch.long)

    def __getitem__(self, idx: int):
        start, nbs = (int(v) for v in self.indices[idx])
        actions = self.actions[start : start + self.horizon_steps]
        states = self.states[self._history(start, nbs, self.cond_steps)]
        if not self.use_images:
            return states, actions
        imgs = self.images[self._history(start, nbs, self.img_cond_steps)]  # [To_img, C, H, W]
        per_cam = {name: imgs[:, 3 * i : 3 * i + 3] for i, name in enumerate(self.camera_names)}
        return {"state": states, "images": per_cam}, actions
