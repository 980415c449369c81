"""The worker's settings, from the environment only (12-factor), validated at start.

Every variable is listed in README.md ("Worker settings"); TLS and SASL (`security`, the
STREAM_GUARD_KAFKA_* variables) in docs/kafka-security.md. A bad value stops the worker before it
connects to anything, with the variable's name and what is wrong with it (every bad variable in
one message).

>>> s = WorkerSettings.from_env({"STREAM_GUARD_BROKER": "kafka://k1:9092,k2:9092",
...                              "STREAM_GUARD_IDLE_AFTER": "5s"})
>>> s.bootstrap, s.idle_after.total_seconds()
('k1:9092,k2:9092', 5.0)
>>> from stream_guard.errors import ConfigError
>>> try:
...     WorkerSettings.from_env({"STREAM_GUARD_METRICS_PORT": "http"})
... except ConfigError as err:
...     print(str(err)[:60])
environment: STREAM_GUARD_METRICS_PORT: Input should be a va
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stream_guard.config.durations import Duration
from stream_guard.config.env import model_from_env
from stream_guard.config.errors import Problems
from stream_guard.config.kafka_security import KafkaSecurity
from stream_guard.config.topics import default_topics_dir

__all__ = ["ENV", "WorkerSettings"]

ENV: dict[str, str] = {
    "broker": "STREAM_GUARD_BROKER",
    "app_id": "STREAM_GUARD_APP_ID",
    "topic_prefix": "STREAM_GUARD_TOPIC_PREFIX",
    "rules": "STREAM_GUARD_RULES",
    "topics": "STREAM_GUARD_TOPICS",
    "store": "STREAM_GUARD_STORE",
    "data_dir": "STREAM_GUARD_DATA_DIR",
    "metrics_port": "STREAM_GUARD_METRICS_PORT",
    "web_port": "STREAM_GUARD_WEB_PORT",
    "idle_after": "STREAM_GUARD_IDLE_AFTER",
    "flush_interval": "STREAM_GUARD_FLUSH_INTERVAL",
    "batch_max": "STREAM_GUARD_BATCH_MAX",
    "session_timeout": "STREAM_GUARD_SESSION_TIMEOUT",
    "log_level": "STREAM_GUARD_LOG_LEVEL",
}
"""Setting -> environment variable (Slack's variables are read by sinks/slack.py, Kafka's TLS and
SASL ones by config/kafka_security.py)."""


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = Field(default="kafka://127.0.0.1:9092", min_length=1)
    app_id: str = Field(default="stream-guard", pattern=r"^[A-Za-z0-9._-]+$")
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    rules: Path = Path("alert_rules")
    topics: Path = Field(default_factory=default_topics_dir)
    store: str = Field(default="memory://", pattern=r"^(memory|rocksdb|aerospike)://")
    data_dir: Path = Path("var/stream-guard")
    metrics_port: int = Field(default=9108, ge=-1, le=65535)  # 0: a free port, -1: no endpoint
    web_port: int = Field(default=6066, ge=0, le=65535)
    idle_after: Duration = timedelta(seconds=30)
    flush_interval: Duration = timedelta(milliseconds=200)
    batch_max: int = Field(default=20_000, ge=1)
    session_timeout: Duration = timedelta(seconds=10)
    log_level: str = Field(default="info", pattern=r"^(debug|info|warning|error)$")
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)

    @field_validator("broker")
    @classmethod
    def _urls(cls, value: str) -> str:
        for url in value.split(","):
            host = url.split("://", 1)[-1]
            if ":" not in host or not host.rsplit(":", 1)[1].isdigit():
                raise ValueError(f"{url!r} is not host:port or kafka://host:port")
        return value

    @property
    def bootstrap(self) -> str:
        """``host:port,host:port`` without URL schemes."""
        return ",".join(url.split("://", 1)[-1] for url in self.broker.split(","))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """The variables of `ENV` and the TLS/SASL ones; every problem in one ConfigError."""
        problems = Problems()
        settings = problems.attempt(lambda: model_from_env(cls, ENV, environ))
        security = problems.attempt(lambda: KafkaSecurity.from_env(environ))
        problems.raise_if_any()
        assert settings is not None and security is not None
        return settings.model_copy(update={"security": security})
