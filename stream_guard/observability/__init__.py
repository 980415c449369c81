"""Prometheus metrics of the live worker: `RuntimeMetrics` and its /metrics endpoint."""

from stream_guard.observability.metrics import RuntimeMetrics, Server

__all__ = ["RuntimeMetrics", "Server"]
