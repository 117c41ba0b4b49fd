"""A training run's directory: resolved config, checkpoints, RNG state for exact resume.

<run_dir>/config.yaml          the resolved job config (written once; a resume must match it)
<run_dir>/checkpoints/last.pt  the latest checkpoint (atomic writes); step_<n>.pt snapshots
<run_dir>/train.csv|jsonl|png  metrics (dppo_robot.train.metrics_log)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dppo_robot.typed_config import ConfigError, to_dict


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.ckpt_dir / "last.pt"

    def snapshot(self, step: int) -> Path:
        return self.ckpt_dir / f"step_{step:07d}.pt"

    def can_resume(self) -> bool:
        return self.last.is_file()

    def write_config(self, cfg: Any, resume: bool) -> dict:
        """Write config.yaml; on resume, refuse a config that differs from the run's.

        Run length and where envs run (collector: same seeds, same episodes on any backend) may change.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        data = to_dict(cfg)
        path = self.path / "config.yaml"
        if path.is_file():
            old = yaml.safe_load(path.read_text())
            # run length, device and collector may change between sessions (a GPU run can continue on a
            # CPU; where the envs run does not change the episodes)
            diff = _diff(old, data, ignore={"n_itr", "train_steps", "collector", "device"})
            if diff:  # a run directory belongs to one config, checkpointed or not
                what = "resuming" if resume else "this run_dir holds a run of another config"
                raise ConfigError(
                    f"{path}: {what} with a different config ({', '.join(diff[:5])}); "
                    "use a new run_dir or the original config"
                )
        if not resume:  # nothing to resume: the log starts clean (no rows of an earlier attempt)
            for old_log in [*self.path.glob("train.*"), *self.path.glob("eval.*")]:
                if old_log.suffix in (".csv", ".jsonl", ".png"):
                    old_log.unlink()
        path.write_text(
            "# resolved config of this run (written by dppo_robot)\n" + yaml.safe_dump(data, sort_keys=False)
        )
        return data


def _diff(a: Any, b: Any, ignore: set[str], prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in ignore or k not in a:  # a field added by newer code (its default) is not a change
                continue
            out += _diff(a.get(k), b.get(k), ignore, f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Global RNG states as plain data and tensors (loadable with torch.load(weights_only=True))."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    out = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # a run on the GPU (device cuda / auto)
        out["torch_cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
