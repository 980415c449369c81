#!/usr/bin/env bash
# Creates .venv (if needed) and installs stream-guard with its dev tools into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# Debian's prometheus (and promtool) lets tests/integration/test_observability_contract.py run a
# real Prometheus against a worker and check every dashboard query; without it those checks skip.
# Best effort: only as root with apt-get, never fatal.
if ! command -v prometheus >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
    >/dev/null 2>&1 || echo "setup: Debian's prometheus not installed; its checks will skip" >&2
fi
# Debian's stunnel4 is the TLS proxy in front of the dev broker in tests/integration/test_kafka_tls.py
# (the worker and the Kafka tools over TLS); without it that test skips. Same terms as above.
if ! command -v stunnel4 >/dev/null && ! command -v stunnel >/dev/null && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stunnel4 \
    >/dev/null 2>&1 || echo "setup: Debian's stunnel4 not installed; the TLS test will skip" >&2
fi
