"""Rollout keyframes: rendered offscreen at phase changes, written into the report, shown by Chromium."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dppo_robot.envs.registry import default_task_config, make_env
from dppo_robot.sim2real.keyframes import _FrameTap, record_rollouts
from dppo_robot.sim2real.records import TrialStore
from dppo_robot.sim2real.report import write_report
from dppo_robot.sim2real.runners import run_sim_trials

ROOT = Path(__file__).resolve().parents[2]
SQUARE = ROOT / "policies" / "square_dppo"


def _img(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float64)


def test_one_leg_expert_gets_a_keyframe_at_each_phase_it_reaches():
    from dppo_robot.data.one_leg_expert import OneLegExpert
    from dppo_robot.envs.one_leg.phases import PHASE_NAMES

    env = _FrameTap(make_env(default_task_config("one_leg"), seed=3), None, (96, 128), list(PHASE_NAMES))
    expert = OneLegExpert()
    obs, _ = env.reset(seed=3)
    expert.reset(env, np.random.default_rng(3))
    for _ in range(400):
        obs, _, term, trunc, _ = env.step(expert.act(obs))
        if env.phase >= 2 or term or trunc:
            break
    env.close()
    assert env.phase >= 2, "the expert should put the tabletop in the corner within 400 steps"
    frames = env.frames
    assert [f.caption for f in frames[:3]] == [
        "start",
        f"step {frames[1].step}: {PHASE_NAMES[1]}",
        f"step {frames[2].step}: {PHASE_NAMES[2]}",
    ]
    assert 0 < frames[1].step < frames[2].step and [f.phase for f in frames[:3]] == [0, 1, 2]
    imgs = [_img(f.png) for f in frames[:3]]
    assert all(i.shape == (96, 128, 3) and i.std() > 10 for i in imgs)  # rendered, not blank
    assert np.abs(imgs[0] - imgs[2]).mean() > 1.0  # the scene changed between start and corner


def test_report_with_rollouts_renders_keyframes_in_headless_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    task = default_task_config("square", max_episode_steps=12)  # short episodes: the test is about the report
    store = TrialStore(tmp_path / "sim.jsonl")
    run_sim_trials(SQUARE, task, 2, store, seed=5, n_envs=2, workers=0)
    rollouts = record_rollouts(SQUARE, task, [5, 6], size=(120, 160))
    assert [r.seed for r in rollouts] == [5, 6]
    for r in rollouts:
        assert r.arm.endswith("/ sim") and r.steps == 12 and not r.success
        assert [f.caption for f in r.frames] == ["start", "step 12: end (stopped)"]
    out = tmp_path / "report"
    files = write_report([store.path], out, rollouts=rollouts)
    data = json.loads(files["json"].read_text())
    assert [len(r["frames"]) for r in data["rollouts"]] == [2, 2]
    for r in data["rollouts"]:
        assert all((out / f["file"]).is_file() for f in r["frames"])
    md = files["markdown"].read_text()
    assert "## Rollouts" in md and md.count("](keyframes/") == 4
    page = files["html"].read_text()
    assert page.count('class="keyframe"') == 4 and "## Rollouts" not in page
    if exe is None:
        pytest.skip("Debian package chromium is not installed (scripts/setup.sh installs it)")
    plain = write_report([store.path], tmp_path / "plain")["html"]  # the same report without rollouts

    def busy_patches(page: Path) -> int:
        """100x100 patches of the rendered page that vary like a photograph (keyframes; plots are sparse lines)."""
        shot = page.with_suffix(".png")
        env = {**os.environ, "HOME": str(tmp_path)}
        subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,2400",
             f"--screenshot={shot}", page.as_uri()],
            check=True, capture_output=True, timeout=90, env=env,
        )  # fmt: skip
        img = np.asarray(Image.open(shot).convert("RGB"), np.float64)
        h, w = img.shape[0] // 100, img.shape[1] // 100
        return int((img[: h * 100, : w * 100].reshape(h, 100, w, 100, 3).std(axis=(1, 3, 4)) > 25).sum())

    assert busy_patches(files["html"]) >= busy_patches(plain) + 2
