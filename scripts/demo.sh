#!/usr/bin/env bash
# The main job, on a fresh machine: simulate a week of platform traffic with labelled incidents,
# replay it through the engine (alerts printed as they fire), then score the alerts against the
# labels (report + plots in out/demo/report/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SEED="${SEED:-11}"
OUT="${OUT:-out/demo}"
.venv/bin/stream-guard simulate --days 7 --seed "$SEED" --out "$OUT"
.venv/bin/stream-guard replay --rules alert_rules --input "$OUT/events.jsonl" \
  --output "$OUT/alerts.jsonl" --dead-letters "$OUT/dead_letters.jsonl"
.venv/bin/stream-guard backtest --input "$OUT/events.jsonl" --labels "$OUT/labels.json" \
  --out "$OUT/report" --quiet
