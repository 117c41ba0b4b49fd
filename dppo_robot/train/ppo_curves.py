"""Compare fine-tuning runs: per-iteration curves (one PNG, one CSV) and before/after returns.

Reads the `train.jsonl` (and `eval.jsonl`) that `dppo-robot finetune` writes in each run dir.
Curves, against env steps: average episode return (training episodes, with exploration noise,
and the periodic deterministic evaluations), total loss, policy-gradient loss, value loss,
explained variance, approx KL and clip fraction.

Run: python -m dppo_robot.train.ppo_curves --run DPPO=DIR --run "Gaussian PPO"=DIR --out OUT
     [--before BC.json --after FT.json ...]   (evaluate.json files: return difference with a 95% interval)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

# (train.jsonl key, panel title)
PANELS = [
    ("train_return", "average episode return"),
    ("loss", "total loss"),
    ("pg_loss", "policy-gradient loss"),
    ("v_loss", "value loss"),
    ("explained_variance", "explained variance"),
    ("approx_kl", "approx KL"),
    ("clipfrac", "clip fraction"),
]
CSV_KEYS = ["itr", "env_steps", "wall_s"] + [k for k, _ in PANELS] + ["eval_mean_return"]


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a metrics .jsonl file ([] when it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def run_rows(run_dir: str | Path) -> list[dict]:
    """One row per iteration: CSV_KEYS, wall_s cumulative (collect + update), eval joined by itr."""
    train = read_jsonl(Path(run_dir) / "train.jsonl")
    if not train:
        raise FileNotFoundError(f"{run_dir}/train.jsonl: no training rows")
    evals = {r["itr"]: r.get("mean_return", float("nan")) for r in read_jsonl(Path(run_dir) / "eval.jsonl")}
    rows, wall = [], 0.0
    for r in train:
        wall += float(r.get("collect_s", 0.0)) + float(r.get("update_s", 0.0))
        row = {k: r.get(k, float("nan")) for k in CSV_KEYS}
        row["wall_s"] = round(wall, 1)
        row["eval_mean_return"] = evals.get(r["itr"], float("nan"))
        rows.append(row)
    if 0 in evals:  # the evaluation before any update
        rows.insert(0, {**{k: float("nan") for k in CSV_KEYS}, "itr": 0, "env_steps": 0, "wall_s": 0.0})
        rows[0]["eval_mean_return"] = evals[0]
    return rows


def write_csv(runs: dict[str, list[dict]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["algorithm", *CSV_KEYS])
        w.writeheader()
        for name, rows in runs.items():
            for r in rows:
                w.writerow({"algorithm": name, **r})
    return path


def plot(runs: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """One PNG: a panel per PANELS key against env steps, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(11, 11), sharex=True)
    axes = axes.ravel()
    for ax, (key, label) in zip(axes, PANELS):
        for i, (name, rows) in enumerate(runs.items()):
            color = f"C{i}"
            pts = [(r["env_steps"], r[key]) for r in rows if _finite(r[key])]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, color=color, label=name + (" (training episodes)" if key == "train_return" else ""))
            if key == "train_return":
                ev = [(r["env_steps"], r["eval_mean_return"]) for r in rows if _finite(r["eval_mean_return"])]
                if ev:
                    xs, ys = zip(*ev)
                    ax.plot(xs, ys, "o--", color=color, ms=4, label=f"{name} (deterministic eval)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    # last panel: wall time against env steps
    ax = axes[len(PANELS)]
    for i, (name, rows) in enumerate(runs.items()):
        ax.plot([r["env_steps"] for r in rows], [r["wall_s"] for r in rows], color=f"C{i}", label=name)
    ax.set_title("wall time (s, collect + update)")
    ax.grid(alpha=0.3)
    for ax in axes[-2:]:
        ax.set_xlabel("env steps")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def episode_returns(evaluate_json: str | Path) -> np.ndarray:
    """Per-episode returns of an `dppo-robot evaluate` output (evaluate.json)."""
    d = json.loads(Path(evaluate_json).read_text())
    return np.array([e["return"] for e in d["episodes_detail"]], float)


def mean_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its Student-t interval."""
    from scipy import stats

    m = float(np.mean(x))
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x)))
    return m, m - h, m + h


def diff_ci(after: np.ndarray, before: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means (after - before) with a Welch interval (independent episodes)."""
    from scipy import stats

    d = float(np.mean(after) - np.mean(before))
    va, vb = np.var(after, ddof=1) / len(after), np.var(before, ddof=1) / len(before)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(after) - 1) + vb**2 / (len(before) - 1)) if se > 0 else 1.0
    h = float(stats.t.ppf(0.5 + level / 2, dof) * se)
    return d, d - h, d + h


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dppo_robot.train.ppo_curves", description=__doc__.split("\n")[0])
    p.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (a finetune run dir); repeat")
    p.add_argument("--out", required=True, help="output prefix: OUT.png and OUT.csv")
    p.add_argument("--title", default="")
    p.add_argument("--before", help="evaluate.json of the start (BC) policy")
    p.add_argument("--after", action="append", default=[], help="NAME=evaluate.json of a fine-tuned policy; repeat")
    a = p.parse_args(argv)
    runs = {}
    for spec in a.run:
        name, _, d = spec.partition("=")
        runs[name] = run_rows(d)
    png = plot(runs, f"{a.out}.png", a.title)
    csv_path = write_csv(runs, f"{a.out}.csv")
    print(f"wrote {png} and {csv_path}")
    for name, rows in runs.items():
        last = rows[-1]
        print(f"{name}: {last['itr']} iterations, {last['env_steps']} env steps, {last['wall_s']} s")
    if a.before:
        b = episode_returns(a.before)
        m, lo, hi = mean_ci(b)
        print(f"before ({a.before}): {m:.0f} [{lo:.0f}, {hi:.0f}] over {len(b)} episodes")
        for spec in a.after:
            name, _, path = spec.partition("=")
            x = episode_returns(path)
            m, lo, hi = mean_ci(x)
            d, dlo, dhi = diff_ci(x, b)
            print(f"{name}: {m:.0f} [{lo:.0f}, {hi:.0f}]; gain {d:+.0f} [{dlo:+.0f}, {dhi:+.0f}] (95%, Welch)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
