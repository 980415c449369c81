#!/usr/bin/env bash
# The whole test suite, on a fresh machine: lint, type check, unit + integration tests (the
# integration tests start the embedded Kafka-protocol broker themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
