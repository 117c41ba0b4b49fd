"""dppo-robot evaluate on a checkpoint and on its exported bundle (real env, torch and onnxruntime)."""

import json

import pytest

from dppo_robot.bundle.export import export_checkpoint
from dppo_robot.envs.registry import default_task_config
from dppo_robot.runtime.errors import BundleMismatchError
from dppo_robot.train.evaluate import evaluate
from dppo_robot.train.job_config import EvalSettings, EvaluateConfig
from tests.train.conftest import pretrained


def test_checkpoint_and_bundle_evaluate_alike(tmp_path):
    ckpt = pretrained(tmp_path, "diffusion", 0)
    export_checkpoint(ckpt, tmp_path / "bundle")
    task = default_task_config("reach2d")
    settings = EvalSettings(n_episodes=60, n_envs=20)
    a = evaluate(EvaluateConfig(task, str(ckpt), str(tmp_path / "ev_ckpt"), settings))
    b = evaluate(EvaluateConfig(task, str(tmp_path / "bundle"), str(tmp_path / "ev_bundle"), settings))
    assert a["kind"] == "checkpoint" and b["kind"] == "bundle"
    assert a["episodes"] == b["episodes"] == 60
    lo, hi = a["success_ci95"]
    assert lo <= a["success_rate"] <= hi
    # the same policy (different x_T draws): rates within what 60 + 60 episodes can tell apart
    assert abs(a["success_rate"] - b["success_rate"]) < 0.3
    detail = json.loads((tmp_path / "ev_bundle" / "evaluate.json").read_text())["episodes_detail"]
    assert len(detail) == 60 and len({d["seed"] for d in detail}) == 60


def test_bundle_of_another_task_is_refused(tmp_path):
    ckpt = pretrained(tmp_path, "diffusion", 0)
    export_checkpoint(ckpt, tmp_path / "bundle")
    cfg = EvaluateConfig(default_task_config("halfcheetah"), str(tmp_path / "bundle"), str(tmp_path / "ev"))
    with pytest.raises(BundleMismatchError, match="task 'halfcheetah' provides"):
        evaluate(cfg)


def test_evaluate_command_overrides_policy_episodes_and_out(tmp_path, capsys):
    from dppo_robot.cli import main

    ckpt = pretrained(tmp_path, "diffusion", 0)
    cfg = tmp_path / "evaluate.yaml"
    cfg.write_text(
        "task: {name: reach2d, max_episode_steps: 40, control_hz: 10.0}\npolicy: nowhere.pt\nout: "
        + str(tmp_path / "default_out")
        + "\n"
        "eval: {n_episodes: 50, n_envs: 4}\n"
    )
    assert main(["evaluate", str(cfg), "--policy", str(ckpt), "--episodes", "4", "--out", str(tmp_path / "o")]) == 0
    out = json.loads((tmp_path / "o" / "evaluate.json").read_text())
    assert out["episodes"] == 4 and out["policy"] == str(ckpt)
    assert not (tmp_path / "default_out").exists()
    assert f"reach2d: {out['successes']}/4 successes" in capsys.readouterr().out
