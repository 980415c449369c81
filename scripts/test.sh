#!/usr/bin/env bash
# The whole test suite, on a fresh machine: lint, type check, unit + integration tests (the
# integration tests start the embedded Kafka-protocol broker themselves).
#
# pytest runs on two xdist workers (the machine has 2 cores; much of the suite waits on the
# broker and on live workers rather than computing), each with its own broker;
# tests/xdist_schedule.py decides which modules go together and which start first. mypy runs
# alongside pytest and its verdict is printed as soon as it has one; either failing fails the
# script. Extra arguments go to pytest (e.g. `-n 0` for one process, `-x`, a path).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
mypy_log=$(mktemp)
mypy_rc=$(mktemp)
trap 'rm -f "$mypy_log" "$mypy_rc"' EXIT
( .venv/bin/mypy >"$mypy_log" 2>&1; echo $? >"$mypy_rc"; printf '\nmypy: '; cat "$mypy_log" ) &
mypy_pid=$!
pytest_rc=0
.venv/bin/python -m pytest -n 2 --dist loadscope "$@" || pytest_rc=$?
wait "$mypy_pid"
if [ "$(cat "$mypy_rc")" != 0 ]; then
  echo "mypy failed (see above)" >&2
  exit 1
fi
exit "$pytest_rc"
