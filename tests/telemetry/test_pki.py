"""Trusted onboarding PKI (WP-3.1.2): CA, site identity, revocation, expiry, foreign CA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from controller.errors import ConflictError, ValidationError
from telemetry.pki import CertificateAuthority, Trust, compute_id, fingerprint, site_of


def _cert(p: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(p.read_bytes())


def _der(p: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return _cert(p).public_bytes(Encoding.DER)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    ca = CertificateAuthority(tmp_path / "ca")
    ca.init()
    return ca


def test_site_cert_names_its_site_and_chains(ca: CertificateAuthority) -> None:
    path = ca.issue("MEC-1")
    assert site_of(_cert(path)) == "MEC-1"
    assert (path.with_suffix(".key").stat().st_mode & 0o777) == 0o600
    trust = Trust(ca.cert_path, [ca.dir / "crl.pem"])
    site, fp = trust.check(_der(path))
    assert (site, fp) == ("MEC-1", fingerprint(_cert(ca.cert_path)))


def test_issue_twice_refused_and_bad_name_refused(ca: CertificateAuthority) -> None:
    ca.issue("MEC-1")
    with pytest.raises(ConflictError):
        ca.issue("MEC-1")
    with pytest.raises(ValidationError, match="site"):
        ca.issue("bad name/x")


def test_revoked_cert_refused_after_crl_reload(ca: CertificateAuthority) -> None:
    der = _der(ca.issue("MEC-2"))
    trust = Trust(ca.cert_path, [ca.dir / "crl.pem"])
    assert trust.check(der)[0] == "MEC-2"
    serial = ca.revoke("MEC-2")
    with pytest.raises(ValidationError, match="revoked"):
        trust.check(der)
    assert ca.revoked() == {serial: "MEC-2"}
    # a new certificate may then be issued and is accepted
    assert trust.check(_der(ca.issue("MEC-2")))[0] == "MEC-2"


def test_expired_and_foreign_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    old = ca.issue("OLD", not_before=past, not_after=past + dt.timedelta(hours=1))
    trust = Trust(ca.cert_path, [ca.dir / "crl.pem"])
    with pytest.raises(ValidationError, match="expired"):
        trust.check(_der(old))
    other = CertificateAuthority(tmp_path / "other")
    other.init()
    with pytest.raises(ValidationError, match="chain"):
        trust.check(_der(other.issue("MEC-1")))


def test_serial_list_revocation(ca: CertificateAuthority) -> None:
    path = ca.issue("MEC-3")
    trust = Trust(ca.cert_path, [], {_cert(path).serial_number})
    with pytest.raises(ValidationError, match="revoked"):
        trust.check(_der(path))


def test_compute_id_stable_and_distinct() -> None:
    a = compute_id("ab" * 32, "MEC-1", "gpu")
    assert a == compute_id("ab" * 32, "MEC-1", "gpu")
    assert len({a, compute_id("cd" * 32, "MEC-1", "gpu"), compute_id("ab" * 32, "MEC-2", "gpu"),
                compute_id("ab" * 32, "MEC-1", "cpu")}) == 4


def test_cpn_ca_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from controller.cli.main import app

    run = CliRunner().invoke
    d = str(tmp_path / "ca")
    assert run(app, ["ca", "init", "--dir", d, "--server-name", "10.0.0.1"]).exit_code == 0
    assert run(app, ["ca", "issue", "--site", "MEC-1", "--dir", d]).exit_code == 0
    again = run(app, ["ca", "issue", "--site", "MEC-1", "--dir", d])
    assert again.exit_code == 2 and "already has a certificate" in again.output
    res = run(app, ["ca", "revoke", "--site", "MEC-1", "--dir", d])
    assert res.exit_code == 0 and "revoked MEC-1" in res.output
    assert list(CertificateAuthority(Path(d)).revoked().values()) == ["MEC-1"]
    assert run(app, ["ca", "revoke", "--site", "MEC-9", "--dir", d]).exit_code == 2
