"""Loading reference Hydra configs: interpolations, the safe `eval`, and what is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dppo_robot.bundle.hydra_config import HydraConfigError, load_hydra_config, private_resolvers, safe_eval

# Written like the reference's cfg/furniture/finetune/one_leg_low/ft_ppo_diffusion_mlp.yaml (shortened).
REFERENCE_LIKE = """\
defaults:
  - _self_
hydra:
  run:
    dir: ${logdir}
_target_: agent.finetune.train_ppo_diffusion_agent.TrainPPODiffusionAgent

name: ${env_name}_ft_diffusion_mlp_ta${horizon_steps}_td${denoising_steps}_tdf${ft_denoising_steps}
logdir: ${oc.env:DPPO_LOG_DIR}/furniture-finetune/${name}/${now:%Y-%m-%d}_${now:%H-%M-%S}_${seed}
seed: 42
env_name: ${env.specific.furniture}_${env.specific.randomness}_dim
obs_dim: 58
action_dim: 10
transition_dim: ${action_dim}
denoising_steps: 100
ft_denoising_steps: 5
cond_steps: 1
horizon_steps: 8
act_steps: 8

env:
  max_episode_steps: 700
  specific:
    furniture: one_leg
    randomness: low

train:
  n_steps: ${eval:'round(${env.max_episode_steps} / ${act_steps})'}
  actor_lr: 1e-5

model:
  _target_: model.diffusion.diffusion_ppo.PPODiffusion
  actor:
    _target_: model.diffusion.mlp_diffusion.DiffusionMLP
    mlp_dims: [1024, 1024, 1024]
    cond_dim: ${eval:'${obs_dim} * ${cond_steps}'}
    transition_dim: ${transition_dim}
  critic:
    mlp_dims: ${eval:'[512] * 3'}
  ceil: ${round_up:2.5}
  floor: ${round_down:2.5}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def test_reference_like_config_resolves(tmp_path, monkeypatch):
    monkeypatch.setenv("DPPO_LOG_DIR", "/secret/home/of/someone")
    path = write(tmp_path, REFERENCE_LIKE, ".hydra/config.yaml")
    notes: list[str] = []
    cfg = load_hydra_config(path, notes)
    assert cfg["model"]["actor"]["cond_dim"] == 58
    assert cfg["model"]["actor"]["transition_dim"] == 10
    assert cfg["train"]["n_steps"] == 88  # round(700 / 8), as Python's eval gives
    assert cfg["train"]["actor_lr"] == pytest.approx(1e-5)  # YAML 1e-5 without a dot is a float here
    assert cfg["model"]["critic"]["mlp_dims"] == [512, 512, 512]
    assert (cfg["model"]["ceil"], cfg["model"]["floor"]) == (3, 2)
    assert cfg["env_name"] == "one_leg_low_dim"
    assert cfg["name"] == "one_leg_low_dim_ft_diffusion_mlp_ta8_td100_tdf5"
    assert cfg["model"]["_target_"] == "model.diffusion.diffusion_ppo.PPODiffusion"
    # the environment is not read; now is fixed; defaults and hydra sections are dropped
    assert cfg["logdir"].startswith("<env:DPPO_LOG_DIR>/furniture-finetune/")
    assert "/secret/" not in str(cfg)
    assert cfg["logdir"].endswith("/1970-01-01_00-00-00_42")
    assert "defaults" not in cfg and "hydra" not in cfg
    assert notes == []  # `- _self_` alone is not composition


def test_defaults_that_compose_are_ignored_with_a_note(tmp_path):
    path = write(tmp_path, "defaults:\n  - _self_\n  - env: robomimic\na: 1\n")
    notes: list[str] = []
    assert load_hydra_config(path, notes) == {"a": 1}
    assert len(notes) == 1 and "not supported" in notes[0] and str(path) in notes[0]


def test_eval_refuses_code_and_does_not_run_it(tmp_path):
    marker = tmp_path / "PWNED"
    expr = f"__import__('os').system('touch {marker}')"
    path = write(tmp_path, f'a: 1\nb: ${{eval:"{expr}"}}\n')
    with pytest.raises(HydraConfigError) as e:
        load_hydra_config(path)
    msg = str(e.value)
    assert str(path) in msg and expr in msg and "not allowed" in msg and "key 'b'" in msg
    assert not marker.exists()


@pytest.mark.parametrize(
    "expr, why",
    [
        ("__import__('os')", "call of '__import__'"),
        ("(1).__class__", "attribute access"),
        ("(lambda: 1)()", "call of"),
        ("x + 1", "name 'x'"),
        ("[i for i in [1]]", "ListComp"),
        ("'a' * 3", "not a number"),
        ("open('/etc/passwd')", "call of 'open'"),
        ("9 ** 9 ** 9", "exceeds"),
        ("[0] * 10 ** 9", "exceeds"),
        ("1 / 0", "ZeroDivisionError"),
        ("1 if 1 else 2", "IfExp"),
        ("round(2.5, ndigits=1)", "keyword"),
    ],
)
def test_safe_eval_refusals(expr, why):
    with pytest.raises(ValueError) as e:
        safe_eval(expr)
    assert why in str(e.value)


@pytest.mark.parametrize(
    "expr, value",
    [
        ("58 * 1", 58),
        ("round(700 / 8)", 88),
        ("-(3 + 4) * 2 ** 3 // 5 % 7", eval("-(3 + 4) * 2 ** 3 // 5 % 7")),
        ("int(7.9) + float(2)", 9.0),
        ("max(1, 4, 2) - min([5, 3])", 1),
        ("len([1, 2, 3]) * abs(-2)", 6),
        ("[64] * 3 + [8]", [64, 64, 64, 8]),
        ("1e-4 * 2", 2e-4),
    ],
)
def test_safe_eval_arithmetic_matches_python(expr, value):
    assert safe_eval(expr) == value


def test_unknown_resolver_is_an_error_naming_file_and_resolver(tmp_path):
    path = write(tmp_path, "a: ${hydra:runtime.cwd}/x\n")  # the hydra section is dropped, the resolver is not known
    with pytest.raises(HydraConfigError) as e:
        load_hydra_config(path)
    assert str(path) in str(e.value) and "hydra" in str(e.value)


def test_missing_interpolation_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "model:\n  cond_dim: ${eval:'${obs_dim} * 2'}\n")
    with pytest.raises(HydraConfigError) as e:
        load_hydra_config(path)
    assert str(path) in str(e.value) and "model.cond_dim" in str(e.value)


def test_bad_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, "a: [1, 2\n")
    with pytest.raises(HydraConfigError, match="invalid YAML"):
        load_hydra_config(path)
    with pytest.raises(HydraConfigError, match="not found"):
        load_hydra_config(tmp_path / "nope.yaml")
    with pytest.raises(HydraConfigError, match="mapping"):
        load_hydra_config(write(tmp_path, "- 1\n- 2\n", "list.yaml"))


def test_resolvers_do_not_leak_and_previous_ones_are_restored(tmp_path):
    had_eval = OmegaConf.has_resolver("eval")
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    register("now", lambda *_: "mine", replace=True)
    try:
        load_hydra_config(write(tmp_path, "a: ${eval:'1 + 1'}\nb: ${now:%Y}\n"))
        assert OmegaConf.has_resolver("eval") == had_eval
        assert OmegaConf.create({"t": "${now:x}"}).t == "mine"  # the caller's resolver is back
        with private_resolvers("x.yaml"):
            assert OmegaConf.create({"t": "${now:%Y}"}).t == "1970"
        assert OmegaConf.create({"t": "${now:x}"}).t == "mine"
        # oc.env is the built-in again afterwards
        with pytest.raises(Exception, match="NOT_SET_ANYWHERE_123"):
            _ = OmegaConf.create({"e": "${oc.env:NOT_SET_ANYWHERE_123}"}).e
    finally:
        OmegaConf.clear_resolver("now")
