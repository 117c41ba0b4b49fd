"""A report comparing sim and sim-in-the-loop (ROS 2 stack) trials of one bundle, rendered in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from PIL import Image

from dppo_robot.cli import main
from dppo_robot.envs.registry import default_task_config
from dppo_robot.sim2real.records import TrialStore, read_trials
from dppo_robot.sim2real.runners import run_sim_trials
from tests.sim2real.conftest import ROS_CONFIG, domain_id

pytestmark = pytest.mark.ros
SHOT_W, SHOT_H = 1280, 1600


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian package chromium is not installed (scripts/setup.sh installs it)")
    return exe


def test_sim_vs_sim_in_the_loop_report_renders_in_headless_chromium(tmp_path, bundle):
    pytest.importorskip("rclpy")
    from dppo_robot.sim2real.ros_runner import run_sim_in_the_loop_trials

    n = 12
    sim = TrialStore(tmp_path / "sim.jsonl")
    run_sim_trials(bundle, default_task_config("phased_reach"), n, sim, seed=0, n_envs=1)
    cfg = yaml.safe_load(ROS_CONFIG.read_text())
    cfg["sim"]["task"] = "phased_reach"
    deploy = tmp_path / "sim_phased.yaml"
    deploy.write_text(yaml.safe_dump(cfg))
    sitl = TrialStore(tmp_path / "sitl.jsonl")
    recs = run_sim_in_the_loop_trials(bundle, deploy, n, sitl, task="phased_reach", seed=0, domain_id=domain_id())
    assert len(recs) == n and all(r.setting == "sim_in_the_loop" and r.phase_source == "env" for r in recs)
    direct = read_trials(sim.path)
    # one env, same seed: the stack plays the same initial states as direct simulation
    assert [r.seed for r in recs] == [r.seed for r in direct]

    out = tmp_path / "report"
    assert main(["report", str(sim.path), str(sitl.path), "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert [a["setting"] for a in data["arms"]] == ["sim", "sim_in_the_loop"]
    (comp,) = data["comparisons"]
    assert (comp["from"], comp["to"]) == ("sim", "sim_in_the_loop")
    assert comp["newcombe"][0] <= comp["diff"] <= comp["newcombe"][1] and 0 <= comp["fisher_p"] <= 1
    md = (out / "report.md").read_text()
    assert "## Sim-to-real gap" in md and "sim -> sim_in_the_loop" in md
    from rich.console import Console

    from dppo_robot.sim2real.report import rich_table

    console = Console(width=200, record=True)
    console.print(rich_table(data))  # the summary `report` and `make demo` print: success and the gap
    text = console.export_text()
    assert "gap (from - to)" in text and f"{comp['diff']:+.3f}" in text and f"{comp['newcombe'][0]:.3f}" in text
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and 'src="http' not in page  # self-contained

    shot = tmp_path / "report.png"
    env = {**os.environ, "HOME": str(tmp_path)}  # chromium's profile and crash dirs
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={SHOT_W},{SHOT_H}", f"--screenshot={shot}", (out / "report.html").as_uri()],
        check=True, capture_output=True, timeout=90, env=env,
    )  # fmt: skip
    img = np.asarray(Image.open(shot).convert("RGB"), np.float64)
    assert img.shape == (SHOT_H, SHOT_W, 3)
    assert img.std() > 20  # not blank
    top = img[: SHOT_H // 3]  # the plots sit at the top: coloured markers (not only grey text)
    assert (np.abs(top[..., 0] - top[..., 2]) > 60).mean() > 1e-4
