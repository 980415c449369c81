"""How every Kafka client of stream-guard authenticates and encrypts: TLS and SASL settings.

One model, read from the environment (`KafkaSecurity.from_env`), and the one place that turns it
into client configuration for each library in use:

- `KafkaSecurity.client_options()`: keyword arguments for aiokafka's and kafka-python's clients
  (both take the same names: ``security_protocol``, ``ssl_context``, ``sasl_mechanism``,
  ``sasl_plain_username``, ``sasl_plain_password``); `client_options()` (the function) reads
  the environment when no settings are given -- what the command-line tools and the worker's
  own readers do;
- `KafkaSecurity.faust_credentials()`: the Faust app's ``broker_credentials``
  (`faust.SSLCredentials` or `faust.SASLCredentials`, with the same SSL context).

tests/unit/config/test_kafka_clients.py fails when a Kafka client is created anywhere else.

Files must exist, be readable and hold what they should (the CA is loaded, the certificate with
its key): a mistake is a ConfigError naming the variable and the path, at start. Secrets are
`SecretStr`: they appear in no repr, log line or error message; an encrypted key without a
password is an error, never an interactive prompt. See docs/kafka-security.md.

>>> s = KafkaSecurity.from_env({"STREAM_GUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
...                             "STREAM_GUARD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
...                             "STREAM_GUARD_KAFKA_SASL_USERNAME": "stream-guard",
...                             "STREAM_GUARD_KAFKA_SASL_PASSWORD": "hunter2"})
>>> s.sasl_password
SecretStr('**********')
>>> sorted(s.client_options())
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> KafkaSecurity().client_options()
{'security_protocol': 'PLAINTEXT'}
>>> from stream_guard.errors import ConfigError
>>> try:
...     KafkaSecurity.from_env({"STREAM_GUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
... except ConfigError as err:
...     print(str(err).split(", ")[0])
environment: STREAM_GUARD_KAFKA_SASL_MECHANISM: Value error
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from stream_guard.config.env import model_from_env

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

__all__ = ["ENV", "KafkaSecurity", "Protocol", "client_options"]

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

ENV: dict[str, str] = {
    "protocol": "STREAM_GUARD_KAFKA_SECURITY_PROTOCOL",
    "ssl_ca_file": "STREAM_GUARD_KAFKA_SSL_CA_FILE",
    "ssl_key_password": "STREAM_GUARD_KAFKA_SSL_KEY_PASSWORD",
    "ssl_key_file": "STREAM_GUARD_KAFKA_SSL_KEY_FILE",
    "ssl_cert_file": "STREAM_GUARD_KAFKA_SSL_CERT_FILE",
    "ssl_check_hostname": "STREAM_GUARD_KAFKA_SSL_CHECK_HOSTNAME",
    "sasl_mechanism": "STREAM_GUARD_KAFKA_SASL_MECHANISM",
    "sasl_username": "STREAM_GUARD_KAFKA_SASL_USERNAME",
    "sasl_password": "STREAM_GUARD_KAFKA_SASL_PASSWORD",
}
"""Setting -> environment variable. The order matters: a field's checks read those before it."""

_TLS: frozenset[str] = frozenset({"SSL", "SASL_SSL"})
_SASL: frozenset[str] = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class KafkaSecurity(BaseModel):
    """TLS (CA, client certificate) and SASL (PLAIN, SCRAM-SHA-256/512) for a Kafka cluster."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Protocol = "PLAINTEXT"
    ssl_ca_file: Path | None = Field(default=None, validate_default=True)
    ssl_key_password: SecretStr | None = Field(default=None, validate_default=True)
    ssl_key_file: Path | None = Field(default=None, validate_default=True)
    ssl_cert_file: Path | None = Field(default=None, validate_default=True)
    ssl_check_hostname: bool = True
    sasl_mechanism: Mechanism | None = Field(default=None, validate_default=True)
    sasl_username: str | None = Field(default=None, validate_default=True)
    sasl_password: SecretStr | None = Field(default=None, validate_default=True)

    @field_validator("ssl_ca_file", "ssl_key_file")
    @classmethod
    def _tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None:
            _only_with(info, _TLS)
            _readable(value)
        if info.field_name == "ssl_ca_file" and value is not None:
            _loaded(lambda: ssl.create_default_context(cafile=value), f"{value}: no CA certificate")
        return value

    @field_validator("ssl_key_password")
    @classmethod
    def _key_password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            _only_with(info, _TLS)
            _no_blank(value)
        return value

    @field_validator("ssl_cert_file")
    @classmethod
    def _cert_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        key, password = info.data.get("ssl_key_file"), info.data.get("ssl_key_password")
        if value is None:
            if key is not None or password is not None:
                raise ValueError(f"required with {ENV['ssl_key_file']} or "
                                 f"{ENV['ssl_key_password']}")
            return None
        _only_with(info, _TLS)
        _readable(value)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA: this only loads the pair
        _loaded(lambda: context.load_cert_chain(value, key, _password(password)),
                f"{value}: no certificate that loads with its private key "
                f"({key or 'in the same file'}; a wrong or missing {ENV['ssl_key_password']}?)")
        return value

    @field_validator("sasl_mechanism", "sasl_username", "sasl_password")
    @classmethod
    def _sasl(cls, value: Any, info: ValidationInfo) -> Any:
        protocol = info.data.get("protocol")
        if protocol is None:  # invalid itself: reported on its own
            return value
        if value is None and protocol in _SASL:
            raise ValueError(f"required when {ENV['protocol']} is {protocol}")
        if value is not None:
            _only_with(info, _SASL)
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        if isinstance(value, SecretStr):
            _no_blank(value)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The variables of `ENV` (unset or empty: the default, PLAINTEXT)."""
        return model_from_env(cls, ENV, environ)

    @property
    def tls(self) -> bool:
        return self.protocol in _TLS

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context: the CA (else the system's), the client certificate if any; None
        without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_file)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_cert_file is not None:
            context.load_cert_chain(self.ssl_cert_file, self.ssl_key_file,
                                    _password(self.ssl_key_password))
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's and kafka-python's clients (consumers, producers,
        admin clients)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl_password is not None:
            options.update(sasl_mechanism=self.sasl_mechanism,
                           sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password.get_secret_value())
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """`faust.App(broker_credentials=...)`: None for PLAINTEXT."""
        import faust

        if self.sasl_password is not None:
            return faust.SASLCredentials(username=self.sasl_username,
                                         password=self.sasl_password.get_secret_value(),
                                         mechanism=self.sasl_mechanism,
                                         ssl_context=self.ssl_context())
        context = self.ssl_context()
        return None if context is None else faust.SSLCredentials(context)


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """`security.client_options()`; without settings, those of the environment."""
    return (security or KafkaSecurity.from_env()).client_options()


def _only_with(info: ValidationInfo, protocols: frozenset[str]) -> None:
    protocol = info.data.get("protocol")
    if protocol is not None and protocol not in protocols:
        raise ValueError(f"only used when {ENV['protocol']} is {' or '.join(sorted(protocols))} "
                         f"(it is {protocol})")


def _readable(path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def _loaded(load: Any, what: str) -> None:
    """Runs `load` (an ssl call); its failure says `what` is wrong."""
    try:
        load()
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{what} ({exc})") from None


def _no_blank(secret: SecretStr) -> None:
    raw = secret.get_secret_value()
    if not raw.strip():
        raise ValueError("must not be blank")


def _password(secret: SecretStr | None) -> Any:
    """The key password for `load_cert_chain`: a callable, so that an encrypted key without a
    password fails instead of OpenSSL prompting on the terminal."""
    value = secret.get_secret_value() if secret is not None else ""
    return lambda: value
