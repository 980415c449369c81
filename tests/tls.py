"""Throw-away certificates for the TLS tests, made with the `openssl` command (no dependency).

`make_pki(directory)` writes a test CA, a server certificate for 127.0.0.1 / localhost, a client
certificate with its key (plain and encrypted) and a second CA that signed none of them. Tests
call `require_openssl()` first: without the command they skip, saying what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["KEY_PASSWORD", "Pki", "make_pki", "require_openssl"]

KEY_PASSWORD = "key-pass-7f3a"  # a throw-away test key's password
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # fast, unlike RSA
_CA_EXT = ["-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign"]


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # KEY_PASSWORD
    other_ca: Path


def require_openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("the openssl command is not installed (Debian: apt-get install openssl)")
    return found


def make_pki(directory: Path) -> Pki:
    """Writes the certificates and keys into `directory` (about 50 ms)."""
    d = directory
    _ca(d / "ca", "stream-guard test CA")
    _ca(d / "other-ca", "another CA")
    _signed(d / "server", d / "ca", "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _signed(d / "client", d / "ca", "stream-guard", "extendedKeyUsage=clientAuth\n")
    _openssl("pkey", "-in", d / "client.key", "-aes256", "-passout", f"pass:{KEY_PASSWORD}",
             "-out", d / "client-encrypted.key")
    return Pki(ca=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server.key",
               client_cert=d / "client.pem", client_key=d / "client.key",
               client_key_encrypted=d / "client-encrypted.key", other_ca=d / "other-ca.pem")


def _ca(stem: Path, name: str) -> None:
    _openssl("req", "-x509", *_CURVE, "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.pem",
             "-days", "2", "-subj", f"/CN={name}", *_CA_EXT)


def _signed(stem: Path, ca: Path, name: str, extensions: str) -> None:
    _openssl("req", *_CURVE, "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
             "-subj", f"/CN={name}")
    ext = Path(f"{stem}.ext")
    ext.write_text(extensions)
    _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{stem}.pem", "-days", "2", "-extfile", ext)


def _openssl(*args: object) -> None:
    subprocess.run([require_openssl(), *map(str, args)], check=True, capture_output=True)
