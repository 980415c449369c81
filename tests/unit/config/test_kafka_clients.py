"""Every Kafka client stream-guard makes goes through the one place that applies the TLS and
SASL settings (config/kafka_security.py); a client made anywhere else fails this test.

The scan reads the source of stream_guard/ (ast, not grep: type annotations naming a client
class are fine) for every use of a client class of aiokafka or kafka-python, and every
`faust.App(...)` call. The factories listed in FACTORIES are the only places allowed to touch a
client class; the tests below check that each applies the settings."""

from __future__ import annotations

import ast
import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from stream_guard.config.kafka_security import ENV, KafkaSecurity
from stream_guard.ingest import kafka
from stream_guard.runtime.ends import new_reader
from tests.tls import Pki, make_pki

PACKAGE = Path(__file__).resolve().parents[3] / "stream_guard"

CLIENT_CLASSES = frozenset({
    "AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "AIOKafkaClient",
    "KafkaConsumer", "KafkaProducer", "KafkaAdminClient", "KafkaClient",
})

FACTORIES = {
    # aiokafka, outside Faust's own clients: the worker's readers (ends, resume, control topic)
    ("runtime/ends.py", "new_reader"),
    # kafka-python, through _connect: topics create, produce, dump, alerts, silences, feedback
    ("ingest/kafka.py", "admin_client"),
    ("ingest/kafka.py", "producer"),
    ("ingest/kafka.py", "consumer"),
}

SASL = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                     sasl_username="u", sasl_password="p")  # type: ignore[arg-type]


class _Uses(ast.NodeVisitor):
    """(function, line) of every client class used outside an import or an annotation, and the
    line of every faust.App call without broker_credentials."""

    def __init__(self) -> None:
        self.function = "<module>"
        self.uses: list[tuple[str, int]] = []
        self.bare_apps: list[int] = []
        self.annotations: set[int] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
            self._annotation(arg.annotation)
        self._annotation(node.returns)
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        if name == "App" and "broker_credentials" not in {k.arg for k in node.keywords}:
            self.bare_apps.append(node.lineno)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._use(node, node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._use(node, node.attr)
        self.generic_visit(node)

    def _annotation(self, node: ast.expr | None) -> None:
        if node is not None:
            self.annotations.update(id(n) for n in ast.walk(node))

    def _use(self, node: ast.expr, name: str) -> None:
        if name in CLIENT_CLASSES and id(node) not in self.annotations:
            self.uses.append((self.function, node.lineno))


@cache
def _scan() -> list[tuple[str, _Uses]]:
    """(module path under stream_guard/, what it uses), parsed once for both tests."""
    scanned = []
    for path in sorted(PACKAGE.rglob("*.py")):
        uses = _Uses()
        uses.visit(ast.parse(path.read_text(), str(path)))
        scanned.append((str(path.relative_to(PACKAGE)), uses))
    return scanned


def test_kafka_clients_are_made_only_by_the_factories_that_apply_the_security() -> None:
    found = {(module, function): line for module, uses in _scan()
             for function, line in uses.uses}
    elsewhere = [f"stream_guard/{module}:{line} in {function}()"
                 for (module, function), line in found.items()
                 if (module, function) not in FACTORIES]
    assert not elsewhere, ("Kafka clients made outside the factories (use ends.new_reader or "
                           f"ingest.kafka's admin_client/producer/consumer): {elsewhere}")
    assert set(found) == FACTORIES, "a factory no longer makes a client: update FACTORIES"


def test_every_faust_app_gets_the_broker_credentials() -> None:
    bare = [f"stream_guard/{module}:{line}" for module, uses in _scan() for line in uses.bare_apps]
    assert not bare, f"faust.App(...) without broker_credentials=: {bare}"


def test_the_aiokafka_reader_applies_the_settings() -> None:
    async def made() -> Any:
        reader = new_reader(["127.0.0.1:1"], SASL)
        client = reader._client
        await reader.stop()
        return client

    client = asyncio.run(made())
    assert (client._security_protocol, client._sasl_mechanism) == ("SASL_PLAINTEXT",
                                                                  "SCRAM-SHA-256")
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("u", "p")


def test_the_aiokafka_reader_reads_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV["protocol"], "SASL_SSL")
    with pytest.raises(Exception, match=ENV["sasl_mechanism"]):
        new_reader(["127.0.0.1:1"])


@contextmanager
def _listener(context: ssl.SSLContext | None = None) -> Iterator[str]:
    """A local server on a free port that accepts connections (and, given a context, does the
    TLS handshake); yields its host:port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(1)
            try:
                with context.wrap_socket(conn, server_side=True) if context else conn:
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        server.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


def test_the_kafka_python_clients_apply_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {ENV["protocol"]: "SASL_PLAINTEXT", ENV["sasl_mechanism"]: "PLAIN",
                        ENV["sasl_username"]: "u", ENV["sasl_password"]: "p"}.items():
        monkeypatch.setenv(name, value)
    made: dict[str, Any] = {}
    with _listener() as bootstrap:
        kafka._connect(lambda **kw: made.update(kw), bootstrap, {"client_id": "x"}, None)
    assert made == {"bootstrap_servers": bootstrap, "client_id": "x",
                    "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                    "sasl_plain_username": "u", "sasl_plain_password": "p"}


def test_the_tls_handshake_is_checked_first_with_a_clear_error(pki: Pki) -> None:
    def security(ca: Path) -> KafkaSecurity:
        return KafkaSecurity(protocol="SSL", ssl_ca_file=ca)

    with _listener(_server_context(pki)) as bootstrap:
        kafka.require_listener(bootstrap, security(pki.ca))
        with pytest.raises(kafka.KafkaToolError) as caught:
            kafka.require_listener(bootstrap, security(pki.other_ca))
    assert str(caught.value).startswith(f"TLS handshake with {bootstrap} failed: "
                                        "unable to get local issuer certificate; is "
                                        f"{pki.other_ca} ({ENV['ssl_ca_file']}) the CA")
    with _listener() as plaintext, pytest.raises(kafka.KafkaToolError, match="a TLS listener"):
        kafka.require_listener(plaintext, security(pki.ca), timeout_s=0.3)
