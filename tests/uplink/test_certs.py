"""Per-device certificates: ``edge-agent cert request`` on the box, the CA signs, ``cert install``
swaps the pair in; and a rotation on a running box against a real mutual-TLS mosquitto: the old
certificate expires, the broker restarts, the box reconnects with the new one and loses nothing."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.config.uplink import UplinkConfig
from edge.errors import UplinkError
from edge.events.builder import EventBuilder
from edge.types import EventDraft
from edge.uplink.certs import CertError, check_certificate, describe, install, make_request
from edge.uplink.mqtt import probe_broker
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker
from tests.uplink.helpers import REPO, Consumer, wait_until


def sign(csr_path: Path, ca_dir: Path, *, seconds: float = 2 * 86400, cn: str | None = None) -> bytes:
    """What the fleet CA does with a CSR (the test CA of the broker fixture)."""
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    now = dt.datetime.now(dt.UTC)
    subject = csr.subject if cn is None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=60 + max(0.0, -seconds)))
        .not_valid_after(now + dt.timedelta(seconds=seconds))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    from tests.fixtures.broker import make_tls

    return make_tls(tmp_path / "pki").dir


def test_request_makes_a_private_key_and_a_csr_for_this_device(tmp_path: Path) -> None:
    csr = make_request("pole-0417", tmp_path / "k.key", tmp_path / "pole-0417.csr", site_id="wuhou")
    assert stat.S_IMODE(os.stat(tmp_path / "k.key").st_mode) == 0o600
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "pole-0417"
    assert csr.is_signature_valid
    loaded = x509.load_pem_x509_csr((tmp_path / "pole-0417.csr").read_bytes())
    assert isinstance(loaded.public_key(), ec.EllipticCurvePublicKey)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other key", "was not issued for the key"),
        ("other device", "CN is 'pole-9999'"),
        ("expired", "not now"),
        ("other CA", "not signed by the CA"),
    ],
)
def test_install_refuses_a_certificate_that_is_not_this_boxs(tmp_path: Path, ca_dir: Path, case: str, message: str) -> None:
    make_request("pole-0417", tmp_path / "new.key", tmp_path / "r.csr")
    pem = sign(tmp_path / "r.csr", ca_dir, seconds=-120 if case == "expired" else 86400,
               cn="pole-9999" if case == "other device" else None)  # fmt: skip
    (tmp_path / "signed.pem").write_bytes(pem)
    key = tmp_path / "new.key"
    ca = ca_dir / "ca.pem"
    if case == "other key":
        make_request("pole-0417", tmp_path / "other.key", tmp_path / "o.csr")
        key = tmp_path / "other.key"
    if case == "other CA":
        from tests.fixtures.broker import make_tls

        ca = make_tls(tmp_path / "other-pki").ca
    with pytest.raises(CertError, match=message):
        check_certificate(tmp_path / "signed.pem", key, "pole-0417", ca)


def test_cert_cli_request_then_install_swaps_files_and_keeps_the_old_pair(tmp_path: Path, ca_dir: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    cfg = yaml.safe_load((REPO / "configs" / "dev-sim.yaml").read_text())
    cfg["uplink"] = {"outbox_path": str(tmp_path / "o.sqlite"),
                     "mqtt": {"host": "localhost", "tls": {"ca_file": str(ca_dir / "ca.pem"),
                              "cert_file": str(tls / "box.crt"), "key_file": str(tls / "box.key")}}}  # fmt: skip
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(cfg))
    (tls / "box.crt").write_text("old cert")
    (tls / "box.key").write_text("old key")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    agent = [sys.executable, "-m", "edge", "cert"]
    r = subprocess.run([*agent, "request", "--config", str(site)], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    device = cfg["device_id"]
    assert (tls / "box.key.new").exists() and (tls / f"{device}.csr").exists()
    (tmp_path / "signed.pem").write_bytes(sign(tls / f"{device}.csr", ca_dir))
    bad = subprocess.run([*agent, "install", "--config", str(site), "--cert", str(tmp_path / "nope.pem")],
                         capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert bad.returncode == 2 and "nope.pem: no such file" in bad.stdout and "Traceback" not in bad.stderr
    r = subprocess.run([*agent, "install", "--config", str(site), "--cert", str(tmp_path / "signed.pem")],
                       capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tls / "box.crt.old").read_text() == "old cert" and (tls / "box.key.old").read_text() == "old key"
    assert not (tls / "box.key.new").exists()
    check_certificate(tls / "box.crt", tls / "box.key", device, ca_dir / "ca.pem")
    assert describe(tls / "box.crt")["cn"] == device


def _event(n: int) -> EventDraft:
    ts = time.time()
    return EventDraft(kind="uplink_test", phase="instant", key=f"r{n}", t=ts, ts=ts, payload={"n": n, "sent_ts": ts})


@pytest.mark.broker
@pytest.mark.slow
def test_certificate_rotation_on_a_running_box_loses_nothing(mosquitto_tls: Broker, tmp_path: Path) -> None:
    tls = mosquitto_tls.tls
    assert tls is not None
    device = "pole-0417"
    box = tmp_path / "box"
    box.mkdir()
    cert, key = box / "client.crt", box / "client.key"
    # The first certificate is about to expire: valid for 12 more seconds.
    make_request(device, key, box / "first.csr")
    cert.write_bytes(sign(box / "first.csr", tls.dir, seconds=12))
    first_expiry = time.time() + 12
    pcert, pkey = tls.client("platform")
    c = Consumer(mosquitto_tls.host, mosquitto_tls.port, tls=(str(tls.ca), str(pcert), str(pkey))).start()
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(box / "outbox.sqlite"),
         "mqtt": {"host": "localhost", "port": mosquitto_tls.port, "backoff_min_s": 0.2, "backoff_max_s": 1.0,
                  "tls": {"ca_file": str(tls.ca), "cert_file": str(cert), "key_file": str(key)}}}
    )  # fmt: skip
    ob = Outbox.from_config(cfg)
    b = EventBuilder(device, "lab", incidents=ob)
    up = Uplink(cfg, device, "lab", ob)
    up.start()
    n = 0
    try:
        wait_until(lambda: up.connected, 15, "the box to connect with its first certificate")
        # Rotation while running: new key + CSR on the box, the CA signs, install swaps the files.
        make_request(device, box / "client.key.new", box / "second.csr")
        (box / "second.pem").write_bytes(sign(box / "second.csr", tls.dir))
        while time.time() < first_expiry + 1:
            n += 1
            ob.put(b.build(_event(n)))
            if n == 20:
                install(box / "second.pem", box / "client.key.new", cert, key, device, tls.ca)
            time.sleep(0.05)
        # The old certificate is dead now: a connection with it is refused...
        old = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"tls": cfg.mqtt.tls.model_copy(  # type: ignore[union-attr]
            update={"cert_file": str(box / "client.crt.old"), "key_file": str(box / "client.key.old")})})})  # fmt: skip
        with pytest.raises(UplinkError):
            probe_broker(old, device, "lab", timeout_s=5)
        # ...and the broker restarts: the running box reconnects with the new pair, events keep coming.
        mosquitto_tls.restart()
        for _ in range(40):
            n += 1
            ob.put(b.build(_event(n)))
            time.sleep(0.05)
        wait_until(lambda: ob.pending() == 0 and up.connected, 30, "the outbox to drain after the reconnect")
        wait_until(lambda: len(c.unique_seqs()) >= n, 30, f"all {n} events at the platform")
        reconnects = up.stats()["reconnects"]
    finally:
        up.stop(2.0)
        ob.close()
        c.stop()
    assert sorted(c.unique_seqs()) == list(range(1, n + 1))
    assert reconnects >= 2  # the first certificate's connection, and the new one's after the restart
