"""Fuzzing every input file kind (issue 18): random and structured mutations of a valid file must give
either a valid load or the project's own error type with a one-line message; never another exception,
a hang past the time bound, or a silent NaN in what loaded.

Bounded for CI: derandomized (the same cases every run), EXAMPLES structured + EXAMPLES byte-level
cases per kind, each under DEADLINE, each test under the pytest-timeout below."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from dppo_robot.bundle.hydra_config import HydraConfigError, load_hydra_config
from dppo_robot.bundle.manifest import read_manifest
from dppo_robot.calibration.schema import load_calibration
from dppo_robot.sim2real.records import TrialError, read_trials
from dppo_robot.train.job_config import FinetuneConfig, PretrainConfig
from dppo_robot.typed_config import ConfigError, load_yaml, to_dict
from tests.bundle.test_hydra_config import REFERENCE_LIKE
from tests.fuzz.mutations import assert_clean_error, non_finite_path, structured, text_edits
from tests.sim2real.test_records import rec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 600  # per strategy and kind: 1200 cases per kind
DEADLINE = timedelta(seconds=5)  # per case: a hang bound on a shared machine, not a speed figure
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WORK = Path(tempfile.mkdtemp(prefix="dppo_fuzz_"))

MANIFEST_TEXT = (REPO / "policies" / "lift_dppo" / "bundle.yaml").read_bytes()
MANIFEST = yaml.safe_load(MANIFEST_TEXT)
CALIBRATION_TEXT = (REPO / "calibration" / "example_calibration.yaml").read_bytes()
CALIBRATION = yaml.safe_load(CALIBRATION_TEXT)
RECORD = to_dict(rec(success=False, trial_id="t0", failure_mode="x", seed=3, episode_return=1.5, steps=10))
RECORD_TEXT = (json.dumps(to_dict(rec(trial_id="a"))) + "\n" + json.dumps(RECORD) + "\n").encode()
REFERENCE = yaml.safe_load(REFERENCE_LIKE)
PRETRAIN_TEXT = (REPO / "configs" / "lift" / "pretrain_diffusion.yaml").read_bytes()
PRETRAIN = yaml.safe_load(PRETRAIN_TEXT)
FINETUNE_TEXT = (REPO / "configs" / "lift" / "finetune_dppo.yaml").read_bytes()


def _dump(tree) -> bytes:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode("utf-8")


# ------------------------------------------------------------------ bundle manifest
def _manifest(data: bytes) -> None:
    bundle = WORK / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "bundle.yaml").write_bytes(data)
    try:
        m = read_manifest(bundle)
    except ConfigError as e:
        assert_clean_error(e)
        return
    content = to_dict(m)
    content.pop("provenance")  # free-form metadata
    assert not non_finite_path(content), f"silent NaN at {non_finite_path(content)}"


@pytest.mark.timeout(600)
@FUZZ
@given(structured(MANIFEST))
def test_fuzz_bundle_manifest_structured(tree):
    _manifest(_dump(tree))


@pytest.mark.timeout(600)
@FUZZ
@given(text_edits(MANIFEST_TEXT))
def test_fuzz_bundle_manifest_bytes(data):
    _manifest(data)


# ------------------------------------------------------------------ trial record
def _records(data: bytes) -> None:
    path = WORK / "trials.jsonl"
    path.write_bytes(data)
    try:
        recs = read_trials(path)
    except TrialError as e:
        assert_clean_error(e)
        return
    for r in recs:
        assert not non_finite_path(to_dict(r)), f"silent NaN at {non_finite_path(to_dict(r))}"


@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::dppo_robot.sim2real.records.TruncatedRecordWarning")
@FUZZ
@given(structured(RECORD))
def test_fuzz_trial_record_structured(tree):
    try:
        line = json.dumps(tree)
    except ValueError:
        return
    _records(RECORD_TEXT + line.encode() + b"\n")


@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::dppo_robot.sim2real.records.TruncatedRecordWarning")
@FUZZ
@given(text_edits(RECORD_TEXT))
def test_fuzz_trial_record_bytes(data):
    _records(data)


# ------------------------------------------------------------------ calibration YAML
def _calibration(data: bytes) -> None:
    path = WORK / "calibration.yaml"
    path.write_bytes(data)
    try:
        calib = load_calibration(path)
    except ConfigError as e:
        assert_clean_error(e)
        return
    assert not non_finite_path(to_dict(calib)), f"silent NaN at {non_finite_path(to_dict(calib))}"


@pytest.mark.timeout(600)
@FUZZ
@given(structured(CALIBRATION))
def test_fuzz_calibration_structured(tree):
    _calibration(yaml.dump(tree, sort_keys=False, allow_unicode=True).encode("utf-8"))


@pytest.mark.timeout(600)
@FUZZ
@given(text_edits(CALIBRATION_TEXT))
def test_fuzz_calibration_bytes(data):
    _calibration(data)


# ------------------------------------------------------------------ reference (Hydra) config
def _reference(data: bytes) -> None:
    path = WORK / "reference.yaml"
    path.write_bytes(data)
    try:
        cfg = load_hydra_config(path)
    except HydraConfigError as e:
        assert_clean_error(e)
        return
    assert isinstance(cfg, dict)
    assert not non_finite_path(cfg), f"silent NaN at {non_finite_path(cfg)}"


@pytest.mark.timeout(600)
@FUZZ
@given(structured(REFERENCE))
def test_fuzz_reference_config_structured(tree):
    _reference(_dump(tree))


@pytest.mark.timeout(600)
@FUZZ
@given(text_edits(REFERENCE_LIKE.encode()))
def test_fuzz_reference_config_bytes(data):
    _reference(data)


# ------------------------------------------------------------------ job config
def _job(data: bytes, cls) -> None:
    path = WORK / "job.yaml"
    path.write_bytes(data)
    try:
        cfg = load_yaml(cls, path)
    except ConfigError as e:
        assert_clean_error(e)
        return
    assert not non_finite_path(to_dict(cfg)), f"silent NaN at {non_finite_path(to_dict(cfg))}"


@pytest.mark.timeout(600)
@FUZZ
@given(structured(PRETRAIN))
def test_fuzz_job_config_structured(tree):
    _job(_dump(tree), PretrainConfig)


@pytest.mark.timeout(600)
@FUZZ
@given(text_edits(FINETUNE_TEXT))
def test_fuzz_job_config_bytes(data):
    _job(data, FinetuneConfig)
