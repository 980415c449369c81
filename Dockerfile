# stream-guard worker image: `docker compose up` builds it (see docs/observability.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, so that editing rules or topics does not reinstall the dependencies.
COPY pyproject.toml README.md ./
COPY stream_guard ./stream_guard
# The rocksdb extra is faust-streaming[rocksdict]: the RocksDB table store, installed so that
# STREAM_GUARD_STORE=rocksdb:// is a setting away (compose runs memory://: docs/observability.md).
RUN pip install ".[rocksdb]"

# Rules and topic definitions: the defaults of STREAM_GUARD_RULES and of `topics create`
# (which looks for ./topics when the package is installed outside the repository).
COPY topics ./topics
COPY alert_rules ./alert_rules

# Unprivileged user; table state (RocksDB) lives in STREAM_GUARD_DATA_DIR, rebuilt from the
# changelog topics when a container is recreated.
RUN useradd --system --uid 10001 --home-dir /var/lib/stream-guard --create-home streamguard
USER streamguard

ENV STREAM_GUARD_RULES=/app/alert_rules \
    STREAM_GUARD_DATA_DIR=/var/lib/stream-guard \
    STREAM_GUARD_METRICS_PORT=9108 \
    STREAM_GUARD_WEB_PORT=6066

# 9108: Prometheus /metrics; 6066: Faust's web server.
EXPOSE 9108 6066

ENTRYPOINT ["stream-guard"]
CMD ["worker"]
