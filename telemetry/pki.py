"""Trusted onboarding PKI (WP-3.1.2, WP-3.1.4): a CA, per-site client certificates,
the ingest server certificate, revocation — and the checks ingest applies.

Rules:
- A site's identity lives in its certificate: subject CN ``cpn-site:<NAME>`` and a
  SAN URI ``cpn-site:<NAME>``; ``site_of(cert)`` reads it (SAN first) and nothing else
  names the site a report may speak for.
- The CA directory layout (``cpn ca init --dir DIR``)::

      DIR/ca.pem  DIR/ca.key            the CA (key mode 0600)
      DIR/server.pem  DIR/server.key    ingest server cert (SAN = names given)
      DIR/sites/<NAME>.pem|.key         one client cert per site
      DIR/crl.pem                       CRL signed by the CA (re-issued on revoke)
      DIR/revoked.json                  {serial-hex: site} (human-readable mirror)

- Any third-party CA bundle may be configured instead (``telemetry.ca_bundle``); only
  the chain (checked by TLS) and the site identity rule matter then.
- Revocation is checked by the application after the handshake against every CRL
  file configured plus the ``revoked`` serial list, reloaded when a file changes, so
  a revoke takes effect without restarting the controller.
- Private keys are written 0600; nothing here ever logs key material.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.errors import ConflictError, NotFoundError, ValidationError

SITE_PREFIX = "cpn-site:"
#: Namespace for compute identifiers (UUIDv5 of CA fingerprint + site + resource).
COMPUTE_NS = uuid.UUID("6f1c0e52-8d0a-5b8e-9c1e-2f4a3b7d9e10")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint (hex) of a certificate's DER form."""
    return cert.fingerprint(hashes.SHA256()).hex()


def compute_id(ca_fingerprint: str, site: str, resource: str) -> str:
    """Stable unique compute identifier (WP-3.1.2): UUIDv5(CA fp / site / resource)."""
    return str(uuid.uuid5(COMPUTE_NS, f"{ca_fingerprint}/{site}/{resource}"))


def site_of(cert: x509.Certificate) -> str | None:
    """The site a certificate speaks for: SAN URI ``cpn-site:NAME``, else the CN."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith(SITE_PREFIX):
                return uri[len(SITE_PREFIX):]
    except x509.ExtensionNotFound:
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        if value.startswith(SITE_PREFIX):
            return value[len(SITE_PREFIX):]
    return None


@dataclass
class CertificateAuthority:
    """A CA directory (see module docstring)."""

    dir: Path

    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.pem"

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.cert_path.exists():
            raise NotFoundError("CA", f"{self.dir} (run `cpn ca init --dir {self.dir}`)")
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key

    def init(self, name: str = "CPN onboarding CA", days: int = 3650,
             server_names: tuple[str, ...] = ("localhost", "127.0.0.1"),
             force: bool = False) -> Path:
        """Create the CA, the ingest server cert and an empty CRL."""
        if self.cert_path.exists() and not force:
            raise ConflictError(f"a CA already exists in {self.dir} (use --force to replace)")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sites").mkdir(exist_ok=True)
        key = _key()
        subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(_now() - dt.timedelta(minutes=5))
                .not_valid_after(_now() + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        _write_key(self.dir / "ca.key", key)
        _write_cert(self.cert_path, cert)
        (self.dir / "revoked.json").write_text("{}\n")
        self._write_crl({})
        self.issue_server(server_names)
        return self.dir

    def _leaf(self, cn: str, sans: list[x509.GeneralName], usage: ExtendedKeyUsageOID | object,
              not_before: dt.datetime | None, not_after: dt.datetime | None,
              days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        ca_cert, ca_key = self._load()
        key = _key()
        nb = not_before or (_now() - dt.timedelta(minutes=5))
        na = not_after or (_now() + dt.timedelta(days=days))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(nb).not_valid_after(na)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]),  # type: ignore[list-item]
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert, key

    def issue_server(self, names: tuple[str, ...]) -> Path:
        import ipaddress

        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        cert, key = self._leaf(f"cpn-ingest:{names[0]}", sans, ExtendedKeyUsageOID.SERVER_AUTH,
                               None, None, 825)
        _write_key(self.dir / "server.key", key)
        _write_cert(self.dir / "server.pem", cert)
        return self.dir / "server.pem"

    def issue(self, site: str, days: int = 365, not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None, force: bool = False) -> Path:
        """Issue the client certificate of ``site`` → ``sites/<site>.pem`` (+ ``.key``)."""
        from controller.models.base import is_name

        if not is_name(site):
            raise ValidationError.single("site", f"{site!r} is not a valid site name",
                                    "use letters, digits, '-', '_' or '.'")
        path = self.dir / "sites" / f"{site}.pem"
        if path.exists() and not force:
            raise ConflictError(f"site {site} already has a certificate ({path}); "
                                "revoke it first or pass --force")
        cert, key = self._leaf(f"{SITE_PREFIX}{site}",
                               [x509.UniformResourceIdentifier(f"{SITE_PREFIX}{site}")],
                               ExtendedKeyUsageOID.CLIENT_AUTH, not_before, not_after, days)
        path.parent.mkdir(exist_ok=True)
        _write_key(path.with_suffix(".key"), key)
        _write_cert(path, cert)
        return path

    def revoked(self) -> dict[str, str]:
        p = self.dir / "revoked.json"
        data: dict[str, str] = json.loads(p.read_text()) if p.exists() else {}
        return data

    def revoke(self, site: str) -> str:
        """Revoke the current certificate of ``site``; re-issue the CRL. Returns serial hex."""
        path = self.dir / "sites" / f"{site}.pem"
        if not path.exists():
            raise NotFoundError("site certificate", f"{site} in {self.dir / 'sites'}")
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        serial = format(cert.serial_number, "x")
        revoked = self.revoked()
        revoked[serial] = site
        (self.dir / "revoked.json").write_text(json.dumps(revoked, indent=1) + "\n")
        self._write_crl(revoked)
        # keep the revoked cert for the record; a new one may be issued afterwards
        path.rename(path.with_suffix(f".revoked-{serial}.pem"))
        path.with_suffix(".key").unlink(missing_ok=True)
        return serial

    def _write_crl(self, revoked: dict[str, str]) -> None:
        ca_cert, ca_key = self._load()
        b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
             .last_update(_now()).next_update(_now() + dt.timedelta(days=7)))
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
                .revocation_date(_now()).build())
        crl = b.sign(ca_key, hashes.SHA256())
        (self.dir / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


@dataclass
class Trust:
    """What ingest trusts: CA bundle fingerprints + revocation (CRLs, serial list).

    ``check(der)`` is called with the peer certificate TLS already verified against
    the bundle; it returns ``(site, ca_fingerprint)`` or raises ``ValidationError``.
    """

    ca_bundle: Path
    crls: list[Path] = field(default_factory=list)
    revoked_serials: set[int] = field(default_factory=set)
    _cas: list[x509.Certificate] = field(default_factory=list)
    _crl_serials: set[int] = field(default_factory=set)
    _mtimes: dict[Path, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._cas = x509.load_pem_x509_certificates(self.ca_bundle.read_bytes())
        self.reload()

    def reload(self) -> None:
        """Re-read CRL files whose mtime changed (cheap; call per connection)."""
        changed = False
        for p in self.crls:
            m = p.stat().st_mtime if p.exists() else -1.0
            if self._mtimes.get(p) != m:
                self._mtimes[p] = m
                changed = True
        if not changed:
            return
        serials: set[int] = set()
        for p in self.crls:
            if not p.exists():
                continue
            crl = x509.load_pem_x509_crl(p.read_bytes())
            issuer = next((c for c in self._cas if c.subject == crl.issuer), None)
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise ValidationError.single("telemetry.revoked", f"CRL {p} is not signed by a "
                                        "configured CA", "check ca_bundle / the CRL file")
            serials |= {r.serial_number for r in crl}
        self._crl_serials = serials

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for ca in self._cas:
            if ca.subject == cert.issuer:
                try:
                    cert.verify_directly_issued_by(ca)
                except (ValueError, TypeError, Exception):
                    continue
                return ca
        return None

    def check(self, der: bytes) -> tuple[str, str]:
        cert = x509.load_der_x509_certificate(der)
        self.reload()
        serial = cert.serial_number
        if serial in self._crl_serials or serial in self.revoked_serials:
            raise ValidationError.single("certificate", f"certificate serial {serial:x} is revoked",
                                    "issue a new certificate: cpn ca issue --site NAME")
        now = _now()
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise ValidationError.single("certificate", "certificate expired or not yet valid",
                                    "issue a new certificate")
        ca = self.issuer_of(cert)
        if ca is None:
            raise ValidationError.single("certificate", "certificate does not chain to a "
                                    "configured CA", "use a cert issued by the onboarding CA")
        site = site_of(cert)
        if site is None:
            raise ValidationError.single("certificate", "certificate names no site "
                                    f"(expected SAN URI {SITE_PREFIX}NAME)",
                                    "issue it with cpn ca issue --site NAME")
        return site, fingerprint(ca)
