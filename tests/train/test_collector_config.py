"""The `collector:` section of finetune configs and its command-line overrides: strict, one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from dppo_robot.train import finetune as finetune_cmd
from dppo_robot.train.job_config import FinetuneConfig
from dppo_robot.train.run_dir import RunDir
from dppo_robot.typed_config import ConfigError, load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/finetune_*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_existing_configs_keep_the_process_pool(path):
    cfg = load_yaml(FinetuneConfig, path)
    assert cfg.collector.backend == "process" and cfg.collector.address == "local"


def write(tmp_path: Path, **overrides) -> Path:
    data = yaml.safe_load((CONFIGS / "reach2d" / "finetune_dppo.yaml").read_text())
    data.update(overrides)
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ray_section_loads(tmp_path):
    path = write(tmp_path, n_workers=4, collector={"backend": "ray", "address": "10.0.0.5:6379", "cpus_per_worker": 2})
    cc = load_yaml(FinetuneConfig, path).collector
    assert (cc.backend, cc.address, cc.cpus_per_worker) == ("ray", "10.0.0.5:6379", 2.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"collector": {"backend": "rya"}}, "field 'collector.backend': 'rya' is not one of 'process', 'ray'"),
        (
            {"collector": {"backend": "ray", "adress": "auto"}},
            "unknown field 'collector.adress'; did you mean 'address'",
        ),
        ({"collector": {"backend": "ray"}, "n_workers": 0}, "collector.backend ray needs n_workers >= 1"),
        ({"collector": {"address": "auto"}}, "field 'collector': address and cpus_per_worker apply to backend 'ray'"),
        ({"collector": {"backend": "ray", "address": " "}}, "field 'collector': address must not be empty"),
        ({"collector": {"backend": "ray", "cpus_per_worker": 0}}, "cpus_per_worker must be > 0, got 0.0"),
    ],
)
def test_bad_collector_sections_are_one_line_errors(tmp_path, overrides, message):
    path = write(tmp_path, **overrides)
    with pytest.raises(ConfigError) as ei:
        load_yaml(FinetuneConfig, path)
    msg = str(ei.value)
    assert msg.startswith(str(path)) and message in msg and "\n" not in msg


def cli_args(path: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    finetune_cmd.add_arguments(parser)
    return parser.parse_args([str(path), *argv])


def test_ray_address_without_ray_backend_is_refused(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ConfigError, match=r"with --collector/--ray-address: address and cpus_per_worker apply to"):
        finetune_cmd.run(cli_args(path, "--ray-address", "auto"))


def test_ray_backend_needs_workers_on_the_command_line_too(tmp_path):
    path = write(tmp_path, n_workers=0)
    with pytest.raises(ConfigError, match=r"collector.backend ray needs n_workers >= 1"):
        finetune_cmd.run(cli_args(path, "--collector", "ray", "--ray-address", "auto"))


def test_resume_may_move_the_envs_but_not_change_the_run(tmp_path):
    cfg = load_yaml(FinetuneConfig, write(tmp_path))
    cfg.run_dir = str(tmp_path / "run")
    run = RunDir(cfg.run_dir)
    run.write_config(cfg, resume=False)
    cfg.collector.backend, cfg.collector.address = "ray", "10.0.0.5:6379"
    run.write_config(cfg, resume=True)  # where the envs run does not change the episodes
    cfg.seed += 1
    with pytest.raises(ConfigError, match=r"resuming with a different config \(seed"):
        run.write_config(cfg, resume=True)
