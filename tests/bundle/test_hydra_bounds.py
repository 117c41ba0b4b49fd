"""Reference-config resolution is bounded in size and time (issue 18, finding 4): nested `eval` lists,
many `eval`s, reference chains that multiply, string doubling and YAML aliases fail fast, in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dppo_robot.bundle.hydra_config import HydraConfigError, load_hydra_config

HANG_BOUND_S = 60  # only against a hang (today's code runs for minutes and gigabytes)


def _load(tmp_path: Path, text: str) -> HydraConfigError:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(HydraConfigError) as e:
        load_hydra_config(path)
    assert time.perf_counter() - t0 < HANG_BOUND_S
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    return e.value


def test_nested_eval_list_bomb_fails_fast(tmp_path):
    e = _load(tmp_path, "obs_dim: 3\nbig: ${eval:'[[0]*100000]*100000'}\n")
    assert "exceeds 100000 values in total" in str(e)


def test_many_evals_are_bounded_in_total(tmp_path):
    lines = [f"k{i}: ${{eval:'[0]*99000'}}" for i in range(12)]
    e = _load(tmp_path, "\n".join(lines) + "\n")
    assert "results exceed 1000000 values in total" in str(e)


def test_reference_chains_that_multiply_are_refused(tmp_path):
    lines = ["a0: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"]
    for i in range(1, 9):
        ref = '"${a' + str(i - 1) + '}"'
        lines.append(f"a{i}: [{', '.join([ref] * 10)}]")
    e = _load(tmp_path, "\n".join(lines) + "\n")
    assert "config expands to" in str(e) and "key 'a8'" in str(e)


def test_string_doubling_and_relative_references_are_refused(tmp_path):
    lines = ["s:", "  x0: abcdefgh"] + [f"  x{i}: ${{.x{i - 1}}}${{.x{i - 1}}}" for i in range(1, 40)]
    e = _load(tmp_path, "\n".join(lines) + "\n")
    assert "config expands to" in str(e)


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 15)]
    e = _load(tmp_path, "\n".join(lines) + "\n")
    assert "YAML aliases (*a0, line 2) are not accepted" in str(e)


def test_ordinary_references_still_resolve(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("obs_dim: 3\ncond_steps: 2\nflat: ${eval:'${obs_dim} * ${cond_steps}'}\nm:\n  a: 1\n  b: ${.a}\n")
    assert load_hydra_config(path) == {"obs_dim": 3, "cond_steps": 2, "flat": 6, "m": {"a": 1, "b": 1}}


def test_defaults_given_as_an_interpolation_is_a_one_line_error_or_ignored(tmp_path):
    """Found by the fuzz test: `defaults: '${0}'` escaped as omegaconf's InterpolationKeyError."""
    from dppo_robot.bundle.hydra_config import HydraConfigError, load_hydra_config

    p = tmp_path / "cfg.yaml"
    p.write_text("defaults: '${0}'\nseed: 1\n")
    try:
        out = load_hydra_config(p)
    except HydraConfigError as e:
        assert str(p) in str(e) and "\n" not in str(e)
    else:
        assert out["seed"] == 1
