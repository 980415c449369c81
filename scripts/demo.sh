#!/usr/bin/env bash
# The main job, on a fresh machine: the live system end to end (about 2 minutes). Starts the
# embedded Kafka-protocol broker, creates the topics, starts a Faust worker, streams 4 simulated
# days with labelled incidents (a day per 20 s), prints each alert as it lands on the alerts topic
# (the content of the Slack message; posted to Slack too when SLACK_BOT_TOKEN is set), ends with
# a summary of incidents caught or missed and stops everything it started.
# The offline path (replay + backtest of a simulated week, with plots) is in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stream-guard demo "$@"
