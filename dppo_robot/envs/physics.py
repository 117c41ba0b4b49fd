"""The MuJoCo physics under a task env: model, data and physics substeps per env step.

A task exposes them through its unwrapped env: `physics_handles() -> (MjModel, MjData, substeps
per env step)` when it defines one, else robosuite's `sim` (found as `env.sim`, `env.env.sim` or
`env.scene.sim`) with substeps = control_timestep / model_timestep. Used by the step-cost
benchmark (raw mj_step of the same model) and by offscreen keyframe rendering.
"""

from __future__ import annotations

from typing import Any


def physics_handles(env: Any) -> tuple[Any, Any, int]:
    """(MjModel, MjData, mj_step substeps per env step) of an env, through any gym wrappers."""
    u = getattr(env, "unwrapped", env)
    fn = getattr(u, "physics_handles", None)
    if callable(fn):
        return fn()
    for owner in (u, getattr(u, "env", None), getattr(u, "scene", None)):
        sim = getattr(owner, "sim", None) if owner is not None else None
        if sim is not None:
            rs = owner if hasattr(owner, "control_timestep") else getattr(u, "env", None) or getattr(u, "scene", None)
            n = round(rs.control_timestep / rs.model_timestep)
            return sim.model._model, sim.data._data, n
    raise TypeError(f"{type(u).__name__} exposes no MuJoCo physics (define physics_handles())")
