"""Connecting the command-line tools to Kafka: bootstrap address, topic prefixes, clients.

The tools (topics create, produce, dump) use kafka-python: they are synchronous batch jobs, so a
blocking client is the simple fit (the Faust runtime has its own aiokafka clients). Every client
is handed out by a context manager, so it is closed even when the job fails half-way; an unclosed
client leaks sockets, which the test suite turns into errors. Every client is made by `_connect`,
with the TLS and SASL settings of the environment (config/kafka_security.py) unless given.

>>> default_bootstrap({})
'127.0.0.1:9092'
>>> default_bootstrap({"STREAM_GUARD_BROKER": "kafka://10.0.0.5:9092,kafka://10.0.0.6:9092"})
'10.0.0.5:9092,10.0.0.6:9092'
>>> topic_name("orders", prefix="t1-")
't1-orders'
"""

from __future__ import annotations

import os
import socket
import ssl
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from stream_guard.config.kafka_security import ENV as SECURITY_ENV
from stream_guard.config.kafka_security import KafkaSecurity
from stream_guard.errors import StreamGuardError

# kafka-python is imported here and only here (the other kafka_* modules take its names from
# this module): while importing, kafka-python 3.0 calls importlib.resources.open_text, deprecated
# since Python 3.11, and the warning is attributed to importlib, so a `kafka.*` warnings filter
# misses it and the test suite (warnings are errors) would fail at collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "(open|read)_text is deprecated", DeprecationWarning)
    from kafka import KafkaAdminClient as KafkaAdminClient
    from kafka import KafkaConsumer as KafkaConsumer
    from kafka import KafkaProducer as KafkaProducer
    from kafka import TopicPartition as TopicPartition
    from kafka.admin import NewTopic as NewTopic
    from kafka.errors import KafkaError as KafkaError
    from kafka.errors import TopicAlreadyExistsError as TopicAlreadyExistsError
    from kafka.partitioner.default import murmur2 as murmur2

__all__ = [
    "BROKERS_ENV",
    "DEFAULT_BOOTSTRAP",
    "KafkaToolError",
    "admin_client",
    "consumer",
    "default_bootstrap",
    "ping",
    "producer",
    "require_listener",
    "topic_name",
]

BROKERS_ENV = "STREAM_GUARD_BROKER"  # the worker's variable too (runtime/settings.py)
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
CLIENT_ID = "stream-guard-tools"

REQUEST_TIMEOUT_MS = 10_000
"""Per-request timeout: generous for a local broker, short enough that a dead one fails fast."""

BOOTSTRAP_TIMEOUT_MS = 5_000
"""How long a client tries to reach the bootstrap servers (kafka-python waits 30 s by default)."""

METADATA_WAIT_MS = 10_000
"""How long a producer waits for a topic's metadata before failing (kafka-python's default is
60 s, which turns a forgotten `topics create` into a minute of silence)."""


_BASE: dict[str, Any] = {
    "client_id": CLIENT_ID,
    "request_timeout_ms": REQUEST_TIMEOUT_MS,
    "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
}

_NO_AUTO_CREATE: dict[str, Any] = {
    # Tansu (like Kafka with its default settings) creates a topic, with 4 partitions, the first
    # time a producer or consumer asks for its metadata: a typo or a forgotten `topics create`
    # would silently get the wrong partition count. The tools only use topics that exist.
    "allow_auto_create_topics": False,
}


class KafkaToolError(StreamGuardError):
    """A Kafka tool cannot do its job: no broker, a missing topic, a failed delivery."""


def default_bootstrap(environ: Mapping[str, str] = os.environ) -> str:
    """The bootstrap servers: $STREAM_GUARD_BROKER (URL schemes dropped), else the embedded
    broker's usual port."""
    urls = environ.get(BROKERS_ENV) or DEFAULT_BOOTSTRAP
    return ",".join(url.strip().split("://", 1)[-1] for url in urls.split(","))


def topic_name(name: str, prefix: str = "") -> str:
    """The Kafka topic of a logical topic; a prefix isolates runs (tests, parallel demos)."""
    return prefix + name


def _no_broker(bootstrap: str, exc: Exception) -> KafkaToolError:
    return KafkaToolError(f"no Kafka broker answers at {bootstrap}: {exc}")


def _connect(factory: Callable[..., Any], bootstrap: str, settings: dict[str, Any],
             security: KafkaSecurity | None) -> Any:
    """A kafka-python client with `security` (None: the environment's); a missing broker or a
    failed TLS handshake is a KafkaToolError, not a 30 s retry loop."""
    security = security or KafkaSecurity.from_env()
    require_listener(bootstrap, security)
    try:
        return factory(bootstrap_servers=bootstrap, **(security.client_options() | settings))
    except KafkaError as exc:
        raise _no_broker(bootstrap, exc) from exc


@contextmanager
def admin_client(bootstrap: str, security: KafkaSecurity | None = None,
                 **config: Any) -> Iterator[KafkaAdminClient]:
    """An admin client, closed on exit; raises KafkaToolError when no broker answers."""
    admin = _connect(KafkaAdminClient, bootstrap, _BASE | config, security)
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def producer(bootstrap: str, security: KafkaSecurity | None = None,
             **config: Any) -> Iterator[KafkaProducer]:
    """A producer (raw bytes in, no serializers), flushed and closed on exit."""
    settings = _BASE | _NO_AUTO_CREATE | {"max_block_ms": METADATA_WAIT_MS}
    client = _connect(KafkaProducer, bootstrap, settings | config, security)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def consumer(bootstrap: str, security: KafkaSecurity | None = None,
             **config: Any) -> Iterator[KafkaConsumer]:
    """A consumer without group and without commits (the tools assign partitions themselves)."""
    settings = _BASE | _NO_AUTO_CREATE | {"enable_auto_commit": False, "group_id": None}
    client = _connect(KafkaConsumer, bootstrap, settings | config, security)
    try:
        yield client
    finally:
        client.close(autocommit=False)


def ping(bootstrap: str, timeout_ms: int = 2_000, security: KafkaSecurity | None = None) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within about `timeout_ms`."""
    try:
        with admin_client(bootstrap, security, request_timeout_ms=timeout_ms,
                          bootstrap_timeout_ms=timeout_ms) as admin:
            admin.list_topics()
    except (KafkaToolError, KafkaError):
        return False
    return True


def require_listener(bootstrap: str, security: KafkaSecurity, timeout_s: float = 1.0) -> None:
    """Fails fast, and cleanly, when no bootstrap server accepts TCP connections -- or, with TLS,
    when the first one that does fails the TLS handshake (an unknown CA, a wrong host name).

    kafka-python 3.0 leaks the socket of a refused connection (an unclosed-socket
    ResourceWarning) and then retries until its bootstrap timeout, and aiokafka logs a TLS
    failure and retries too; one plain connect (and handshake) first makes "no broker" and
    "wrong CA" immediate, clear errors.
    """
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)),
                                          timeout=timeout_s) as sock:
                _handshake(sock, host or "localhost", server.strip(), security)
                return
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc}")
    raise KafkaToolError(f"no Kafka broker answers at {bootstrap} ({'; '.join(errors)})")


def _handshake(sock: socket.socket, host: str, server: str, security: KafkaSecurity) -> None:
    """The TLS handshake of `security` on `sock` (nothing without TLS)."""
    context = security.ssl_context()
    if context is None:
        return
    try:
        with context.wrap_socket(sock, server_hostname=host):
            return
    except ssl.SSLCertVerificationError as exc:
        ca = security.ssl_ca_file or "the system's CAs"
        hint = (f"{exc.verify_message}; is {ca} ({SECURITY_ENV['ssl_ca_file']}) the CA that "
                f"signed the broker's certificate, and does that certificate name {host}?")
    except (ssl.SSLError, TimeoutError, ConnectionError) as exc:  # a plaintext listener, ...
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        hint = (f"{reason}; is {server} a TLS listener, and does it accept the client "
                f"certificate ({SECURITY_ENV['ssl_cert_file']})?")
    raise KafkaToolError(f"TLS handshake with {server} failed: {hint}")
