#!/usr/bin/env bash
# Copy the record of how a bundle was trained next to it: BUNDLE/training/ gets the demonstrator
# report, the BC run's resolved config, loss and eval curves, and the fine-tuning run's config,
# curves and metrics. The bundle's own bundle.yaml already carries the resolved fine-tuning
# config and the source checkpoint's sha256; these files are the human-readable trail.
#
#   scripts/package_training_record.sh BUNDLE DEMOS_DIR PRETRAIN_RUN FINETUNE_RUN
set -euo pipefail
if [ $# -ne 4 ]; then
    echo "usage: $0 BUNDLE DEMOS_DIR PRETRAIN_RUN FINETUNE_RUN" >&2
    exit 2
fi
bundle=$1 demos=$2 pre=$3 ft=$4
for f in "$bundle/bundle.yaml" "$demos/demos_report.json" "$pre/config.yaml" "$pre/train.csv" "$ft/config.yaml" "$ft/train.csv"; do
    [ -f "$f" ] || { echo "$0: missing $f" >&2; exit 2; }
done
out="$bundle/training"
mkdir -p "$out"
cp "$demos/demos_report.json" "$out/demos_report.json"
cp "$pre/config.yaml" "$out/pretrain_config.yaml"
cp "$pre/train.csv" "$out/pretrain_loss.csv"
[ -f "$pre/train.png" ] && cp "$pre/train.png" "$out/pretrain_loss.png"
[ -f "$pre/eval.csv" ] && cp "$pre/eval.csv" "$out/pretrain_eval.csv"
cp "$ft/config.yaml" "$out/config.yaml"
cp "$ft/train.csv" "$out/train.csv"
[ -f "$ft/train.png" ] && cp "$ft/train.png" "$out/train.png"
[ -f "$ft/eval.csv" ] && cp "$ft/eval.csv" "$out/eval.csv"
[ -f "$ft/eval.png" ] && cp "$ft/eval.png" "$out/eval.png"
echo "training record -> $out: $(ls "$out" | tr '\n' ' ')"
