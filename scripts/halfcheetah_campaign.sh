#!/usr/bin/env bash
# The HalfCheetah campaign (issue 19): PPO from scratch -> "medium" rollouts (in place of D4RL
# halfcheetah-medium-v2) -> diffusion and Gaussian BC -> DPPO and Gaussian PPO -> evaluation,
# curves. Run directories live under runs/halfcheetah (a link to a directory outside the
# worktree is fine); every step resumes or is skipped when its output exists.
#
#   scripts/halfcheetah_campaign.sh [STEP ...]   steps: medium demos pretrain finetune evaluate curves
set -euo pipefail
PY=${PY:-python}
R=runs/halfcheetah
C=configs/halfcheetah
NICE=${NICE:-nice -n 15}
steps=${*:-medium demos pretrain finetune evaluate curves}
for s in $steps; do
    case $s in
    medium)  # Gaussian PPO from scratch until the last 16 training episodes average 3000
        [ -f $R/medium_ppo/train_summary.json ] ||
            $NICE $PY -m dppo_robot.data.halfcheetah_medium train --out $R/medium_ppo --total-steps 1000000 --target-return 3000 ;;
    demos)  # 50 stochastic 1000-step episodes of it -> train.npz + normalization.npz
        [ -f $R/demos/train.npz ] ||
            $NICE $PY -m dppo_robot.data.halfcheetah_medium collect --policy $R/medium_ppo/policy.pt --out $R/demos --episodes 50 ;;
    pretrain)
        $NICE $PY -m dppo_robot pretrain $C/pretrain_diffusion.yaml &
        $NICE $PY -m dppo_robot pretrain $C/pretrain_gaussian.yaml
        wait ;;
    finetune)
        $NICE $PY -m dppo_robot finetune $C/finetune_dppo.yaml &
        $NICE $PY -m dppo_robot finetune $C/finetune_gaussian.yaml
        wait ;;
    evaluate)
        for run in pretrain_diffusion pretrain_gaussian finetune_dppo finetune_gaussian; do
            $NICE $PY -m dppo_robot evaluate $C/evaluate.yaml --policy $R/$run/checkpoints/last.pt --out $R/eval/$run
        done ;;
    curves)
        $PY -m dppo_robot.train.ppo_curves --run DPPO=$R/finetune_dppo --run "Gaussian PPO"=$R/finetune_gaussian \
            --out docs/halfcheetah/curves --title "HalfCheetah-v5: DPPO vs Gaussian PPO from BC on PPO-medium rollouts" \
            --before $R/eval/pretrain_diffusion/evaluate.json --after DPPO=$R/eval/finetune_dppo/evaluate.json \
            | tee docs/halfcheetah/summary.txt
        $PY -m dppo_robot.train.ppo_curves --run "Gaussian PPO"=$R/finetune_gaussian --out $R/eval/gaussian_only \
            --before $R/eval/pretrain_gaussian/evaluate.json --after "Gaussian PPO"=$R/eval/finetune_gaussian/evaluate.json \
            | tail -2 | tee -a docs/halfcheetah/summary.txt
        $PY - <<'PYEOF'
import json
from pathlib import Path

R = Path("runs/halfcheetah")
def js(p):
    return json.loads(Path(p).read_text()) if Path(p).is_file() else None
def lines(p):
    return [json.loads(x) for x in Path(p).read_text().splitlines()] if Path(p).is_file() else []
def ev(run):
    d = js(R / "eval" / run / "evaluate.json")
    return None if d is None else {k: d[k] for k in ("policy", "episodes", "mean_return", "wall_s")} | {
        "returns": [round(e["return"], 1) for e in d["episodes_detail"]]}
rec = {
    "medium_ppo": js(R / "medium_ppo/train_summary.json"),
    "demos": js(R / "demos/demos_report.json"),
    "pretrain_final_eval": {k: lines(R / k / "eval.jsonl")[-1:] for k in ("pretrain_diffusion", "pretrain_gaussian")},
    "finetune_evals": {k: lines(R / k / "eval.jsonl") for k in ("finetune_dppo", "finetune_gaussian")},
    "evaluate_20_episodes": {k: ev(k) for k in ("pretrain_diffusion", "finetune_dppo", "pretrain_gaussian", "finetune_gaussian")},
}
Path("docs/halfcheetah/record.json").write_text(json.dumps(rec, indent=1) + "\n")
print("wrote docs/halfcheetah/record.json")
PYEOF
        ;;
    *) echo "$0: unknown step $s" >&2; exit 2 ;;
    esac
done
