"""Phase detection from recorded part poses (hardware trials), ROS-free.

A task that can tell its phase from part poses alone provides a `PhaseDetector`: its phase
names (names[0] = nothing done yet) and detect(samples) -> highest phase reached, where each
sample is (time_s, poses [K, 7]: position xyz + quaternion xyzw of K parts, in the order the
part-pose topic publishes them). Detectors are registered per task, or named in a session
config as "module:attribute" (an importable PhaseDetector).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

PoseSample = tuple[float, np.ndarray]


@dataclass(frozen=True)
class PhaseDetector:
    names: tuple[str, ...]
    detect: Callable[[Sequence[PoseSample]], int]


_DETECTORS: dict[str, PhaseDetector] = {}
_PHASE_NAMES: dict[str, tuple[str, ...]] = {}
# Tasks of this package whose phase names live in their own module (imported on first use).
_KNOWN_NAMES = {"one_leg": ("dppo_robot.envs.one_leg.phases", "PHASE_NAMES")}


def register_phase_names(task: str, names: Sequence[str]) -> None:
    """The phase names of a task whose env reports info["phase"] (names[0] = nothing done yet)."""
    if len(names) < 2:
        raise ValueError(f"task '{task}': need at least 2 phase names, got {list(names)}")
    _PHASE_NAMES[task] = tuple(names)


def task_phase_names(task: str) -> tuple[str, ...] | None:
    """Registered phase names of a task (or its detector's), None when unknown."""
    if task in _PHASE_NAMES:
        return _PHASE_NAMES[task]
    if task in _KNOWN_NAMES:
        mod, attr = _KNOWN_NAMES[task]
        try:
            return tuple(getattr(importlib.import_module(mod), attr))
        except (ImportError, AttributeError):
            return None
    det = _DETECTORS.get(task)
    return det.names if det is not None else None


def register_phase_detector(task: str, detector: PhaseDetector) -> None:
    _DETECTORS[task] = detector


def get_phase_detector(task: str) -> PhaseDetector | None:
    return _DETECTORS.get(task)


def load_phase_detector(ref: str, source: str = "<config>") -> PhaseDetector:
    """Import "module:attribute" (a PhaseDetector); errors name the source."""
    from dppo_robot.sim2real.records import TrialError

    mod_name, _, attr = ref.partition(":")
    if not mod_name or not attr:
        raise TrialError(f"{source}: phase_detector must be 'module:attribute', got {ref!r}")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise TrialError(f"{source}: cannot load phase_detector {ref!r}: {e}") from None
    if not isinstance(obj, PhaseDetector):
        raise TrialError(f"{source}: phase_detector {ref!r} is a {type(obj).__name__}, not a PhaseDetector")
    return obj
