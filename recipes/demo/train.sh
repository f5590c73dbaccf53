#!/usr/bin/env bash
# Retrains the demo model that ships in brainsynth/assets/demo, with brainsynth's own commands.
#
#   bash recipes/demo/train.sh [WORKDIR]        (default WORKDIR: runs/demo)
#
# About 15 hours on a 2-core CPU: a 300-subject synthetic cohort (4-6 min), the autoencoder (4000
# steps at about 0.4 s), the diffusion U-Net with epsilon prediction (8000 steps at 1.0-1.2 s, on the
# posterior means, bfloat16 mixed precision, the learning rate annealed along a cosine) and the same
# U-Net continued with v-prediction (4500 steps, recipes/demo/v-prediction.json), which learns the
# clean latent at high noise levels, where epsilon prediction left the layout of the brain to the
# initial noise; then the autoencoder's decoder alone, fine-tuned on the frozen latents (6000 steps,
# recipes/demo/decoder.json), the whole autoencoder fine-tuned from there (6000 steps,
# recipes/demo/autoencoder-tuned.json) and the U-Net fine-tuned on its latents (2000 steps,
# recipes/demo/unet-tuned.json); last, that autoencoder grown to two residual blocks per level and its
# decoder alone fine-tuned again (2500 steps at about 1.6 s, recipes/demo/decoder-grown.json), which keeps
# the latents and so the U-Net. Every stage checkpoints; run the script again to continue where it
# stopped. The finished model is evaluated and copied into the package.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${1:-$repo/runs/demo}"
mkdir -p "$work"

# The state committed in recipes/demo/state (each stage's finished run, or its latest checkpoint) is
# copied in once per stage, except where the work folder already has a stage of its own; the cohort is
# remade from its seed. Delete a stage's folder in WORKDIR afterwards to train that stage afresh.
for stage in autoencoder model vpred decoder aetuned tuned grown; do
  if [ -d "$here/state/$stage" ] && [ ! -e "$work/.state_copied_$stage" ]; then
    if [ ! -e "$work/$stage" ]; then
      mkdir -p "$work/$stage" && cp -rn "$here/state/$stage/." "$work/$stage/"
    fi
    touch "$work/.state_copied_$stage"
  fi
done

continue_flag() {  # --resume when the run folder has a checkpoint, nothing otherwise
  if [ -f "$1/checkpoints/last.pt" ]; then echo "--resume"; fi
}

[ -f "$work/cohort/participants.tsv" ] || \
  brainsynth cohort --n 300 --spacing 2 --seed 0 --output "$work/cohort" --png "$work/cohort.png"

[ -f "$work/autoencoder/autoencoder.json" ] || \
  brainsynth train autoencoder --data "$work/cohort" --config demo --output "$work/autoencoder" \
    $(continue_flag "$work/autoencoder")

[ -f "$work/model/model.json" ] || \
  brainsynth train diffusion --data "$work/cohort" --autoencoder "$work/autoencoder" --config demo \
    --output "$work/model" $(continue_flag "$work/model")

[ -f "$work/vpred/model.json" ] || \
  brainsynth train diffusion --data "$work/cohort" --autoencoder "$work/autoencoder" \
    --config "$here/v-prediction.json" --init-from "$work/model" --output "$work/vpred" \
    $(continue_flag "$work/vpred")

# The decoder alone, fine-tuned on the autoencoder's frozen latents (recipes/demo/decoder.json; 6000
# steps at about 1.9 s on one core): sharper brains from the same latents, so the U-Net stays as it is.
[ -f "$work/decoder/autoencoder.json" ] || \
  brainsynth train autoencoder --data "$work/cohort" --config "$here/decoder.json" \
    --init-from "$work/autoencoder" --output "$work/decoder" $(continue_flag "$work/decoder")

# The whole autoencoder, encoder too, fine-tuned from the decoder stage (recipes/demo/autoencoder-tuned.json;
# 6000 steps at about 0.8 s on one core): sharper again, but its latents move, so the U-Net follows.
[ -f "$work/aetuned/autoencoder.json" ] || \
  brainsynth train autoencoder --data "$work/cohort" --config "$here/autoencoder-tuned.json" \
    --init-from "$work/decoder" --output "$work/aetuned" $(continue_flag "$work/aetuned")

# The v-prediction U-Net fine-tuned on the tuned autoencoder's latents (recipes/demo/unet-tuned.json).
[ -f "$work/tuned/model.json" ] || \
  brainsynth train diffusion --data "$work/cohort" --autoencoder "$work/aetuned" \
    --config "$here/unet-tuned.json" --init-from "$work/vpred" --output "$work/tuned" \
    $(continue_flag "$work/tuned")

# The tuned autoencoder grown to two residual blocks per level, the added blocks starting as identities,
# and its decoder alone fine-tuned on the frozen latents (recipes/demo/decoder-grown.json): sharper again,
# with the same latents, so the tuned U-Net stays as it is.
[ -f "$work/grown/autoencoder.json" ] || \
  brainsynth train autoencoder --data "$work/cohort" --config "$here/decoder-grown.json" \
    --init-from "$work/tuned" --output "$work/grown" $(continue_flag "$work/grown")

# The package gets the weights, the configuration and a model card: what the model is for, how it
# was trained and the evaluation's tables. The model is evaluated as packaged.
target="$repo/brainsynth/assets/demo"
rm -rf "$target.new" && mkdir -p "$target.new"
# The packaged copy carries the demo preset's name and description (the run is named after its
# configuration, recipes/demo/unet-tuned.json, which its record keeps).
# The tuned model takes the grown autoencoder, whose run started from the tuned model's autoencoder and
# trained the decoder alone: its latents are the ones the U-Net was trained on.
python - "$work/tuned" "$target.new" "$here/unet-tuned.json" "$work/grown" <<'EOF'
import dataclasses
import json
import sys
from pathlib import Path

import brainsynth
from brainsynth.loading.model_dir import write_model_files
from brainsynth.training.autoencoder import load_trained_autoencoder
from brainsynth.training.settings import load_training_config

model = brainsynth.load_model(sys.argv[1])
autoencoder, grown = load_trained_autoencoder(sys.argv[4])
run = json.loads((Path(sys.argv[4]) / "run.json").read_text())
if run["autoencoder"]["fine_tune"] != "decoder" or run["autoencoder_weights"] != model.weight_hashes["autoencoder"]["sha256"]:
    sys.exit(f"{sys.argv[4]} is not a decoder fine-tuning of {sys.argv[1]}'s autoencoder")
model.autoencoder = autoencoder.eval()
model.config = dataclasses.replace(model.config, autoencoder=dict(grown["network"]))
preset = load_training_config("demo")
sampling = load_training_config(sys.argv[3]).diffusion  # the defaults chosen by measurement (README, Speed)
model.config = dataclasses.replace(
    model.config,
    name=preset.name,
    description=preset.description,
    default_steps=sampling.sampling_steps,
    default_scheduler=sampling.sampling_scheduler,
)
write_model_files(model, Path(sys.argv[2]), card="")
EOF
brainsynth evaluate --model "$target.new" --n 32 --output "$work/report" --overwrite

# The evaluation report (markdown and figures) is kept in docs/demo-report.
rm -rf "$repo/docs/demo-report" && mkdir -p "$repo/docs/demo-report"
cp "$work/report/"*.png "$repo/docs/demo-report/"
for file in report.md report.json; do sed "s|$repo/||g" "$work/report/$file" > "$repo/docs/demo-report/$file"; done

{
  cat "$here/card.md"
  echo
  sed -n '/^## /,$p' "$work/tuned/README.md" | sed "s|$repo/||g"
  echo
  echo "## Evaluation"
  echo
  echo "\`brainsynth evaluate --model demo --n 32\` (figures in docs/demo-report of the source repository):"
  sed -n '2,$p' "$work/report/report.md" | grep -v '^!\[' | sed 's/^## /### /' | sed "s|$repo/||g"
} > "$target.new/README.md"
rm -rf "$target" && mv "$target.new" "$target"
echo "demo model written to $target"
