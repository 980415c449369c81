"""TLS and SASL settings: validation from the environment, secrets kept out of sight, and the
mapping to each library's client configuration (Faust, aiokafka, kafka-python)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream_guard.config.kafka_security import ENV, KafkaSecurity, client_options
from stream_guard.errors import ConfigError
from stream_guard.runtime.settings import WorkerSettings
from tests.tls import KEY_PASSWORD, Pki, make_pki

SECRET = "s3cr3t-never-shown"  # a test value that must not leak

PROTOCOL = ENV["protocol"]
CA, CERT, KEY = ENV["ssl_ca_file"], ENV["ssl_cert_file"], ENV["ssl_key_file"]
KEY_PASS, CHECK_HOST = ENV["ssl_key_password"], ENV["ssl_check_hostname"]
MECHANISM, USER, PASSWORD = ENV["sasl_mechanism"], ENV["sasl_username"], ENV["sasl_password"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls(pki: Pki, **extra: str) -> dict[str, str]:
    return {PROTOCOL: "SSL", CA: str(pki.ca), CERT: str(pki.client_cert),
            KEY: str(pki.client_key), **extra}


def _sasl(protocol: str = "SASL_PLAINTEXT", mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {PROTOCOL: protocol, MECHANISM: mechanism, USER: "stream-guard", PASSWORD: SECRET}


def _error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        KafkaSecurity.from_env(env)
    return str(caught.value)


# Mapping ---------------------------------------------------------------------------------------


def test_nothing_set_is_plaintext_for_every_library() -> None:
    security = KafkaSecurity.from_env({})
    assert security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_tls_with_a_client_certificate(pki: Pki) -> None:
    security = KafkaSecurity.from_env(_tls(pki))
    options = security.client_options()
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL"
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


def test_tls_without_host_name_check_and_with_an_encrypted_key(pki: Pki) -> None:
    env = _tls(pki, **{KEY: str(pki.client_key_encrypted), KEY_PASS: KEY_PASSWORD,
                       CHECK_HOST: "false"})
    context = KafkaSecurity.from_env(env).ssl_context()
    assert context is not None and not context.check_hostname


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_plaintext(mechanism: str) -> None:
    security = KafkaSecurity.from_env(_sasl(mechanism=mechanism))
    assert security.client_options() == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
        "sasl_plain_username": "stream-guard", "sasl_plain_password": SECRET}
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_PLAINTEXT", mechanism)
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("stream-guard", SECRET)
    assert auth["ssl_context"] is None


def test_sasl_over_tls_carries_the_context_to_faust(pki: Pki) -> None:
    security = KafkaSecurity.from_env(_sasl("SASL_SSL") | {CA: str(pki.ca)})
    assert security.client_options()["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    auth = credentials_to_aiokafka_auth(security.faust_credentials())
    assert auth["security_protocol"] == "SASL_SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)


def test_client_options_without_settings_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in _sasl().items():
        monkeypatch.setenv(name, value)
    assert client_options()["sasl_plain_password"] == SECRET


def test_the_worker_settings_carry_the_security() -> None:
    settings = WorkerSettings.from_env(_sasl())
    assert settings.security == KafkaSecurity.from_env(_sasl())


def test_the_worker_reports_every_bad_variable_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerSettings.from_env({"STREAM_GUARD_METRICS_PORT": "http", PROTOCOL: "SASL_SSL"})
    message = str(caught.value)
    assert "STREAM_GUARD_METRICS_PORT" in message and MECHANISM in message


# Refused, naming the variable (and the path) --------------------------------------------------


def test_a_missing_or_unreadable_file_names_the_variable_and_the_path(
    pki: Pki, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    assert f"{CA}: Value error, cannot read {missing}: No such file" in _error(
        _tls(pki, **{CA: str(missing)}))
    assert f"{KEY}: Value error, cannot read {tmp_path}: Is a directory" in _error(
        _tls(pki, **{KEY: str(tmp_path)}))


def test_files_that_do_not_hold_what_they_should(pki: Pki) -> None:
    assert f"{CA}: Value error, {pki.client_key}: no CA certificate" in _error(
        _tls(pki, **{CA: str(pki.client_key)}))
    mismatch = _error(_tls(pki, **{KEY: str(pki.server_key)}))
    assert f"{CERT}: Value error, {pki.client_cert}: no certificate that loads with" in mismatch


def test_an_encrypted_key_needs_its_password_and_never_prompts(pki: Pki) -> None:
    encrypted = _tls(pki, **{KEY: str(pki.client_key_encrypted)})
    assert f"a wrong or missing {KEY_PASS}" in _error(encrypted)
    assert f"a wrong or missing {KEY_PASS}" in _error(encrypted | {KEY_PASS: "wrong"})


def test_a_key_needs_its_certificate(pki: Pki) -> None:
    env = _tls(pki)
    del env[CERT]
    assert f"{CERT}: Value error, required with {KEY}" in _error(env)


def test_sasl_needs_mechanism_user_and_password() -> None:
    message = _error({PROTOCOL: "SASL_SSL"})
    for variable in (MECHANISM, USER, PASSWORD):
        assert f"{variable}: Value error, required when {PROTOCOL} is SASL_SSL" in message
    assert MECHANISM in _error(_sasl() | {MECHANISM: "GSSAPI"})


def test_settings_of_another_protocol_are_refused_not_ignored(pki: Pki) -> None:
    assert f"{USER}: Value error, only used when {PROTOCOL} is SASL_PLAINTEXT or SASL_SSL " \
           "(it is SSL)" in _error(_tls(pki, **{USER: "bob"}))
    assert f"{CA}: Value error, only used when {PROTOCOL} is SASL_SSL or SSL " \
           "(it is SASL_PLAINTEXT)" in _error(_sasl() | {CA: str(pki.ca)})
    assert PROTOCOL in _error({PROTOCOL: "TLS"})


# Secrets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", [" ", "\t "])
def test_a_blank_secret_is_refused_naming_the_variable(blank: str, pki: Pki) -> None:
    assert f"{PASSWORD}: Value error, must not be blank" in _error(_sasl() | {PASSWORD: blank})
    assert f"{KEY_PASS}: Value error, must not be blank" in _error(_tls(pki, **{KEY_PASS: blank}))


def test_secrets_appear_in_no_repr_or_error(pki: Pki) -> None:
    env = _sasl("SASL_SSL") | {CA: str(pki.ca), CERT: str(pki.client_cert),
                               KEY: str(pki.client_key_encrypted), KEY_PASS: KEY_PASSWORD}
    security = KafkaSecurity.from_env(env)
    shown = [repr(security), str(security), repr(WorkerSettings.from_env(env)),
             repr(security.faust_credentials())]
    shown.append(_error(env | {KEY_PASS: SECRET}))  # a wrong password: refused, not echoed
    shown.append(_error(env | {MECHANISM: "nope"}))
    assert not [text for text in shown if SECRET in text or KEY_PASSWORD in text]
