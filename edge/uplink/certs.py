"""Per-device client certificates: a key and CSR made on the box, and installing the signed certificate.

    edge-agent cert request --config /etc/edge/site.yaml     # new key (0600) + CSR, CN = device_id
    edge-agent cert install --config /etc/edge/site.yaml --cert pole-0417.pem
    edge-agent cert show /etc/edge/tls/pole-0417.crt

The private key never leaves the box: ``request`` writes ``<key_file>.new`` beside the configured key
and a CSR to send to the fleet CA. ``install`` checks the signed certificate (matches the new key,
CN = device_id, valid now, signed by ``tls.ca_file`` when that CA can verify it) and swaps both files
in with atomic renames, keeping the previous pair as ``.old``. The running agent keeps its current
connection; every new connection loads the files again, so the rotated certificate is used from the
next reconnect (``systemctl restart edge-agent`` to switch at once: the outbox is on disk, nothing
is lost). Rotate well before the old certificate expires.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.errors import ConfigError


class CertError(ConfigError):
    """A key, CSR or certificate is missing, malformed or does not belong to this box."""


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def make_request(device_id: str, key_path: Path, csr_path: Path, *, site_id: str | None = None) -> x509.CertificateSigningRequest:
    """A new EC P-256 key (mode 0600) and a CSR with CN = ``device_id`` (and OU = ``site_id``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, device_id)]
    if site_id:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site_id))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, pem_key)
    csr_path.parent.mkdir(parents=True, exist_ok=True)
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return csr


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise CertError(f"{path}: no such file") from None
    except ValueError as exc:
        raise CertError(f"{path}: not a PEM certificate ({exc})") from None


def _load_key(path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise CertError(f"{path}: no such file; run 'edge-agent cert request' first") from None
    except (ValueError, TypeError) as exc:
        raise CertError(f"{path}: not an unencrypted PEM private key ({exc})") from None


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def describe(cert_path: Path, now: dt.datetime | None = None) -> dict[str, Any]:
    """Subject CN, issuer, validity and days left of a certificate."""
    cert = _load_cert(cert_path)
    now = now or dt.datetime.now(dt.UTC)
    return {
        "cn": _cn(cert),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": round((cert.not_valid_after_utc - now).total_seconds() / 86400, 1),
    }


def check_certificate(cert_path: Path, key_path: Path, device_id: str, ca_path: Path | None = None) -> x509.Certificate:
    """The signed certificate belongs to this box: its key, CN = device_id, valid now, issued by the CA."""
    cert = _load_cert(cert_path)
    key = _load_key(key_path)
    pub = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != pub:
        raise CertError(f"{cert_path} was not issued for the key {key_path}; sign the CSR made with that key")
    if _cn(cert) != device_id:
        raise CertError(f"{cert_path}: CN is {_cn(cert)!r}, this box is {device_id!r}; the broker ACL would refuse it")
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertError(
            f"{cert_path} is valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
            "not now; check the box clock or get a new certificate"
        )
    if ca_path is not None and ca_path.exists():
        ca = _load_cert(ca_path)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise CertError(f"{cert_path} is not signed by the CA in {ca_path}; the broker would refuse it") from None
    return cert


def install(cert_path: Path, new_key: Path, cert_file: Path, key_file: Path, device_id: str, ca_path: Path | None) -> None:
    """Check, then swap the new pair in (atomic renames; the previous pair is kept as .old)."""
    check_certificate(cert_path, new_key, device_id, ca_path)
    for live in (cert_file, key_file):
        if live.exists():
            os.replace(live, live.with_name(live.name + ".old"))
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cert_file.with_name(cert_file.name + ".tmp")
    tmp.write_bytes(cert_path.read_bytes())
    os.replace(tmp, cert_file)
    os.replace(new_key, key_file)


def _tls_paths(config: str) -> tuple[str, str, Path, Path, Path | None]:
    from edge.config.loader import load_config

    cfg = load_config(config)
    mqtt = cfg.uplink.mqtt
    if mqtt is None or mqtt.tls is None or mqtt.tls.cert_file is None or mqtt.tls.key_file is None:
        raise CertError(f"{config}: uplink.mqtt.tls.cert_file and key_file are not set; add them to use a client certificate")
    return cfg.device_id, cfg.site_id, Path(mqtt.tls.cert_file), Path(mqtt.tls.key_file), Path(mqtt.tls.ca_file)


def _cmd_request(args: argparse.Namespace) -> int:
    if args.config:
        device, site, _, key_file, _ = _tls_paths(args.config)
        key = Path(args.key) if args.key else key_file.with_name(key_file.name + ".new")
    elif args.device and args.key:
        device, site, key = args.device, args.site, Path(args.key)
    else:
        print("error: give --config FILE, or --device ID and --key PATH")
        return 2
    csr = Path(args.csr) if args.csr else key.parent / f"{device}.csr"
    make_request(device, key, csr, site_id=site)
    print(f"new key {key} (mode 0600, stays on this box); CSR {csr} for CN={device}: send the CSR to the fleet CA")
    return 0


def _cmd_install(args: argparse.Namespace) -> int:
    device, _, cert_file, key_file, ca = _tls_paths(args.config)
    new_key = Path(args.key) if args.key else key_file.with_name(key_file.name + ".new")
    install(Path(args.cert), new_key, cert_file, key_file, device, ca)
    info = describe(cert_file)
    print(
        f"installed {cert_file} (CN={info['cn']}, valid until {info['not_after']}); the next connection uses it: "
        "'systemctl restart edge-agent' to switch now (the outbox is kept)"
    )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import json

    print(json.dumps(describe(Path(args.cert)), indent=1))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("cert", help="per-device client certificates: request, install, show")
    sub = p.add_subparsers(dest="cert_cmd", metavar="ACTION", required=True)
    r = sub.add_parser("request", help="a new key and CSR on this box (CN = device_id)")
    r.add_argument("--config", help="site config: device id, and the new key beside uplink.mqtt.tls.key_file")
    r.add_argument("--device", help="device id (without --config)")
    r.add_argument("--site", help="site id, put in the CSR's OU (without --config)")
    r.add_argument("--key", help="where to write the new key (default <key_file>.new)")
    r.add_argument("--csr", help="where to write the CSR (default DEVICE.csr beside the key)")
    r.set_defaults(func=_run(_cmd_request))
    i = sub.add_parser("install", help="check a signed certificate and swap it in with its new key")
    i.add_argument("--config", required=True, help="site config (tls paths, device id)")
    i.add_argument("--cert", required=True, help="the signed certificate (PEM)")
    i.add_argument("--key", help="the key made by 'cert request' (default <key_file>.new)")
    i.set_defaults(func=_run(_cmd_install))
    s = sub.add_parser("show", help="subject, issuer and validity of a certificate")
    s.add_argument("cert")
    s.set_defaults(func=_run(_cmd_show))


def _run(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except ConfigError as exc:
            print(f"error: {exc}")
            return 2

    return wrapped
