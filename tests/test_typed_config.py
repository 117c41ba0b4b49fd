from dataclasses import dataclass, field
from typing import Literal

import pytest

from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.typed_config import ConfigError, load_yaml, to_dict


@dataclass
class Inner:
    max_step_m: float = 0.01
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    control_hz: float
    inner: Inner = field(default_factory=Inner)
    names: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.control_hz <= 0:
            raise ValueError("control_hz must be > 0")


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_loads_and_round_trips(tmp_path):
    cfg = load_yaml(Outer, write(tmp_path, "control_hz: 10\ninner: {max_step_m: 0.02, mode: b}\nnames: [x]\n"))
    assert cfg.control_hz == 10.0 and cfg.inner.mode == "b" and cfg.names == ["x"]
    assert to_dict(cfg) == {"control_hz": 10.0, "inner": {"max_step_m": 0.02, "mode": "b"}, "names": ["x"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("control_hz: 10\ninner: {max_step: 1}\n", "c.yaml: unknown field 'inner.max_step'; did you mean 'max_step_m'"),
        ("inner: {}\n", "c.yaml: missing required field 'control_hz'"),
        ("control_hz: fast\n", "c.yaml: field 'control_hz': expected a number, got 'fast'"),
        ("control_hz: 10\ninner: {mode: c}\n", "field 'inner.mode': 'c' is not one of 'a', 'b'"),
        ("control_hz: -1\n", "c.yaml: control_hz must be > 0"),
        ("control_hz: 10\nnames: x\n", "field 'names': expected a list"),
        ("control_hz: [1,\n", "c.yaml: invalid YAML"),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_yaml(Outer, write(tmp_path, text))
    assert message in str(e.value)


def test_policy_config_validation(tmp_path):
    with pytest.raises(ConfigError, match="act_steps \\(Ta=8\\) must be <= horizon_steps \\(Tp=4\\)"):
        load_yaml(PolicyConfig, write(tmp_path, "act_steps: 8\nhorizon_steps: 4\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_yaml(PolicyConfig, tmp_path / "missing.yaml")
