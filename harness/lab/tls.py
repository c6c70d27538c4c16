"""The lab's certificate authority and a certificate per service, generated at first start
like the secrets and kept out of git.

    tls/ca.crt                  the CA every client verifies with (sslrootcert=tls/ca.crt)
    tls/private/ca.key          the CA's key: never mounted into a container
    tls/<service>/tls.crt|.key  a service's certificate and key, with a copy of ca.crt
    tls/clients/ca.crt          the CA alone, for containers that only connect

A service's directory is bind-mounted read-only at /etc/gardenlab/tls. Keys are owned by
root, mode 0640, group TLS_GID, which the services get through Compose's `group_add`:
PostgreSQL accepts a key owned by root at 0640, and no copy step is needed. Directories are
mounted, not files, so a rotation's rename reaches the containers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.core.errors import ConfigError
from harness.lab.topology import TLS_NAMES

TLS_DIR = "tls"
CA_CERT = "ca.crt"
CA_KEY = "private/ca.key"
CERT = "tls.crt"
KEY = "tls.key"
CLIENTS = "clients"  # the directory with the CA alone, for containers that only connect
IN_CONTAINER = "/etc/gardenlab/tls"  # where a service's directory is mounted
TLS_GID = 2400  # the group that may read the keys: Compose gives it to the services
HOST_NAMES = ("localhost", "127.0.0.1")  # how the host reaches the published ports
CA_DAYS = 3650
CERT_DAYS = 397  # what browsers accept for a server certificate; `harness tls rotate` renews
ROTATE = "`harness tls rotate`"


@dataclass(frozen=True)
class TlsPaths:
    """Where a server finds its CA, certificate and key: the lab's mount, or an inventory's."""

    ca_file: str
    cert_file: str
    key_file: str


LAB_PATHS = TlsPaths(f"{IN_CONTAINER}/{CA_CERT}", f"{IN_CONTAINER}/{CERT}", f"{IN_CONTAINER}/{KEY}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, mode: int, group: int | None = None) -> None:
    """Written beside and renamed into place, so a mounted directory never shows half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    if group is not None:
        try:
            os.chown(tmp, 0, group)
        except PermissionError:
            tmp.unlink()
            raise ConfigError(
                f"cannot give {path} to root and group {group}: not running as root",
                "run the harness as root (the lab's containers read keys owned by root)",
            ) from None
    tmp.chmod(mode)
    tmp.replace(path)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gardenlab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = _name("gardenlab lab CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def subject_names(service: str) -> list[str]:
    return [*TLS_NAMES[service], *HOST_NAMES]


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue(
    service: str,
    names: Iterable[str],
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    days: int = CERT_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate (also usable as a client's) for `names`, signed by the CA."""
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(service))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        # strict verifiers (Python 3.13's default context) refuse a certificate without one
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def write_server_certificates(directory: Path, names: Mapping[str, Sequence[str]]) -> None:
    """A new CA and a certificate per server, laid out as an inventory's tls source_dir
    (ca.crt, <server>/tls.crt, <server>/tls.key): the rehearsal's, made for each run."""
    now = _now()
    ca, ca_key = make_ca(now)
    _write(directory / CA_CERT, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    for server, server_names in names.items():
        cert, key = issue(server, server_names, ca, ca_key, now)
        _write(directory / server / KEY, _pem_key(key), 0o600)
        _write(directory / server / CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)


@dataclass(frozen=True)
class LabTls:
    """The lab's tls/ directory: what exists, what is missing, and issuing into it."""

    root: Path  # the repository root; files live under root/tls
    services: tuple[str, ...] = tuple(TLS_NAMES)

    @property
    def directory(self) -> Path:
        return self.root / TLS_DIR

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_CERT

    @property
    def ca_key_file(self) -> Path:
        return self.directory / CA_KEY

    def service_dir(self, service: str) -> Path:
        return self.directory / service

    def cert_file(self, service: str) -> Path:
        return self.service_dir(service) / CERT

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        if not self.ca_file.exists():
            return None
        cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        if not self.ca_key_file.exists():
            raise ConfigError(
                f"{self._relative(self.ca_key_file)} is missing: no certificate can be issued",
                f"{ROTATE} --ca makes a new CA and re-issues every certificate",
            )
        key = serialization.load_pem_private_key(self.ca_key_file.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(
                f"{self._relative(self.ca_key_file)} is not the lab CA's key",
                f"{ROTATE} --ca makes a new CA",
            )
        return cert, key

    def write_ca(self, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert, key = make_ca(now)
        self.ca_key_file.parent.mkdir(parents=True, exist_ok=True)
        self.ca_key_file.parent.chmod(0o700)
        _write(self.ca_key_file, _pem_key(key), 0o600)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        _write(self.ca_file, pem, 0o644)
        _write(self.directory / CLIENTS / CA_CERT, pem, 0o644)
        return cert, key

    def write_service(
        self,
        service: str,
        ca: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        now: dt.datetime,
    ) -> None:
        cert, key = issue(service, subject_names(service), ca, ca_key, now)
        directory = self.service_dir(service)
        # the key first: a certificate never sits beside a key it does not match for long
        _write(directory / KEY, _pem_key(key), 0o640, TLS_GID)
        _write(directory / CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(directory / CA_CERT, ca.public_bytes(serialization.Encoding.PEM), 0o644)

    def ensure(self, now: dt.datetime | None = None) -> list[str]:
        """A CA when there is none, a certificate for each service that lacks one; return
        what was issued. Certificates already there are left alone (check judges them)."""
        now = now or _now()
        issued: list[str] = []
        loaded = self.load_ca()
        if loaded is None:
            if any(self.cert_file(s).exists() for s in self.services):
                # certificates of a CA that is gone: ours would not match them
                raise ConfigError(
                    f"{self._relative(self.ca_file)} is missing but certificates it issued "
                    f"are in {self._relative(self.directory)}/",
                    f"{ROTATE} --ca makes a new CA and re-issues every certificate",
                )
            loaded = self.write_ca(now)
            issued.append("CA")
        ca, ca_key = loaded
        for service in self.services:
            if not self.cert_file(service).exists():
                self.write_service(service, ca, ca_key, now)
                issued.append(service)
        return issued

    def check(self, now: dt.datetime | None = None) -> None:
        """Each certificate present, unexpired, and issued by tls/ca.crt: one line otherwise."""
        now = now or _now()
        if not self.ca_file.exists():
            raise ConfigError(
                f"{self._relative(self.ca_file)} is missing",
                "`harness up` generates the lab's CA and certificates on first start",
            )
        ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        if ca.not_valid_after_utc <= now:
            raise ConfigError(
                f"{self._relative(self.ca_file)} expired on {ca.not_valid_after_utc:%Y-%m-%d}",
                f"{ROTATE} --ca makes a new CA and re-issues every certificate",
            )
        for service in self.services:
            path = self.cert_file(service)
            name = self._relative(path)
            if not path.exists() or not (path.parent / KEY).exists():
                raise ConfigError(
                    f"{name} (or its key) is missing", f"{ROTATE} re-issues every certificate"
                )
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.not_valid_after_utc <= now:
                raise ConfigError(
                    f"{name} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                    f"{ROTATE} re-issues every certificate",
                )
            if not issued_by(cert, ca):
                raise ConfigError(
                    f"{name} was not issued by {self._relative(self.ca_file)} "
                    "(another checkout's CA, or a CA replaced by hand)",
                    f"{ROTATE} re-issues every certificate with the CA in "
                    f"{self._relative(self.ca_file)}",
                )

    def rotate(self, new_ca: bool = False, now: dt.datetime | None = None) -> list[str]:
        """Re-issue every service's certificate (and the CA first with `new_ca`)."""
        now = now or _now()
        loaded = None if new_ca else self.load_ca()
        issued = []
        if loaded is None:
            loaded = self.write_ca(now)
            issued.append("CA")
        for service in self.services:
            self.write_service(service, *loaded, now)
            issued.append(service)
        return issued
