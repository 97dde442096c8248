"""Signed events: the key store, the outbox signing at put, rotation, and ``edge-agent verify`` on a
recorded street day (tampered event and tampered evidence crop), from a file and from a live broker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.events.builder import EventBuilder
from edge.events.schema import validate_event
from edge.events.signing import KeyRing, KeyStore, SigningError, Verifier, key_id, signed_bytes
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from tests.fixtures.street_day import StreetDay

REPO = Path(__file__).resolve().parents[2]


def _event(builder: EventBuilder, n: int = 0, **payload: object):
    tr = EventDraft(
        kind="uplink_test", phase="instant", key=f"k{n}", t=float(n), ts=1795392000.0 + n, camera_id="cam0",
        payload={"n": n, **payload},
    )  # fmt: skip
    return builder.build(tr)


def _ring(store: KeyStore) -> KeyRing:
    ring = KeyRing()
    ring.add_document(store.public_document(), source=str(store.public_path))
    return ring


def _rows(ob: Outbox) -> list[dict]:
    ob.flush()
    return [json.loads(r.payload) for r in ob.peek(1000)]


# ------------------------------------------------------------------------------ key store
def test_first_start_makes_a_private_key_only_the_owner_can_read(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "state" / "keys", "pole-1", "lab")
    signer = store.load_or_create()
    assert stat.S_IMODE(store.private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    doc = store.public_document()
    assert doc["device_id"] == "pole-1"
    assert [k["kid"] for k in doc["keys"]] == [signer.kid]
    assert doc["keys"][0]["retired"] is None
    assert KeyStore(store.dir, "pole-1").load_or_create().kid == signer.kid  # the next start reuses it


def test_provisioned_key_is_used_listed_and_must_not_be_world_readable(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = tmp_path / "device.key"
    path.write_bytes(pem)
    path.chmod(0o644)
    store = KeyStore(tmp_path / "keys", "pole-1")
    with pytest.raises(SigningError, match="chmod 600"):
        store.load_or_create(str(path))
    path.chmod(0o640)  # root:edge 0640 is how /etc/edge files are installed
    signer = store.load_or_create(str(path))
    assert signer.kid == key_id(key.public_key())
    assert not store.private_path.exists()  # a provisioned box never generates a key
    assert [k["kid"] for k in store.public_document()["keys"]] == [signer.kid]


def test_a_broken_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    path.write_text("not a key")
    path.chmod(0o600)
    with pytest.raises(SigningError, match="not an unencrypted PEM private key"):
        KeyStore(tmp_path / "keys", "pole-1").load_or_create(str(path))


# ------------------------------------------------------------------------------ outbox signing
def test_outbox_signs_each_event_with_its_seq(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", "pole-1", "lab")
    ob = Outbox(tmp_path / "outbox.sqlite", signer=store.load_or_create())
    b = EventBuilder("pole-1", "lab")
    returned = [ob.put(_event(b, i, note="é 机动车")) for i in range(3)]
    rows = _rows(ob)
    ring = _ring(store)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    for row, ev in zip(rows, returned, strict=True):
        validate_event(row)  # the published schema allows sig
        assert ring.check(row) is None
        assert ev.sig is not None and ev.to_dict() == row  # what put returns is what was stored
    moved = dict(rows[1], seq=7)  # a replayed or renumbered message
    assert "signature does not match" in (ring.check(moved) or "")
    ob.close()


def test_unsigned_outbox_rows_have_no_sig_member(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite")
    ob.put(_event(EventBuilder("pole-1", "lab")))
    (row,) = _rows(ob)
    assert "sig" not in row
    assert "unsigned" in (KeyRing().check(row) or "")
    ob.close()


def test_rotation_keeps_old_events_verifiable(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", "pole-1", "lab")
    b = EventBuilder("pole-1", "lab")
    ob = Outbox(tmp_path / "a.sqlite", signer=store.load_or_create())
    ob.put(_event(b, 1))
    old_row = _rows(ob)[0]
    ob.close()
    old_kid, new_kid = store.rotate()
    assert old_kid == old_row["sig"]["kid"] and new_kid != old_kid
    ob = Outbox(tmp_path / "b.sqlite", signer=store.load_or_create())
    ob.put(_event(b, 2))
    new_row = _rows(ob)[0]
    ob.close()
    assert new_row["sig"]["kid"] == new_kid
    keys = {k["kid"]: k for k in store.public_document()["keys"]}
    assert keys[old_kid]["retired"] is not None and keys[new_kid]["retired"] is None
    ring = _ring(store)
    assert ring.check(old_row) is None and ring.check(new_row) is None
    # A city that drops the old key from its register can no longer verify the old event, and is told why.
    doc = store.public_document()
    doc["keys"] = [k for k in doc["keys"] if k["kid"] == new_kid]
    ring2 = KeyRing()
    ring2.add_document(doc)
    assert f"unknown key id {old_kid}" in (ring2.check(old_row) or "")


def test_an_event_claiming_another_device_is_refused(tmp_path: Path) -> None:
    s1, s2 = KeyStore(tmp_path / "k1", "pole-1"), KeyStore(tmp_path / "k2", "pole-2")
    signer1 = s1.load_or_create()
    s2.load_or_create()
    doc = _event(EventBuilder("pole-2", "lab")).to_dict()  # says pole-2, signed by pole-1's key
    doc["sig"] = signer1.signature(doc)
    ring = KeyRing()
    ring.add_document(s1.public_document())
    ring.add_document(s2.public_document())
    assert "unknown key id" in (ring.check(doc) or "")
    assert signed_bytes(doc) == signed_bytes({k: v for k, v in doc.items() if k != "sig"})


# ------------------------------------------------------------------------------ verify on a street day
def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_verify_names_a_tampered_event_and_a_tampered_crop(street_day: StreetDay, tmp_path: Path) -> None:
    keys = street_day.keys_dir / "public_keys.json"
    ok = _agent("verify", str(street_day.events_path), "--keys", str(keys), "--evidence", str(street_day.evidence_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    n = len(street_day.events)
    assert f"{n} record(s): {n} verified, 0 failed" in ok.stdout
    cites = sum(1 for e in street_day.events if e["payload"].get("evidence_sha256"))  # every phase cites its crop
    assert cites >= 4
    assert f"evidence: {cites} crop(s) checked, {cites} ok, 0 altered or unreadable, 0 missing" in ok.stdout

    lines = street_day.events_path.read_bytes().splitlines(keepends=True)
    victim = next(i for i, raw in enumerate(lines) if b'"kind":"dispatch_task"' in raw)
    at = lines[victim].index(b'"count":') + len(b'"count":')  # one digit of the bike count
    lines[victim] = _flip(lines[victim], at)
    json.loads(lines[victim])  # still a well-formed event: only the signature can tell
    tampered = tmp_path / "events.jsonl"
    tampered.write_bytes(b"".join(lines))

    crops = tmp_path / "evidence"
    crops.mkdir()
    names = sorted(os.listdir(street_day.evidence_dir))
    assert len(names) == 2, names  # car-A and car-C
    for name in names:
        data = (street_day.evidence_dir / name).read_bytes()
        (crops / name).write_bytes(_flip(data, len(data) // 2) if name == names[1] else data)

    bad = _agent("verify", str(tampered), "--keys", str(street_day.keys_dir), "--evidence", str(crops))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    fails = [line for line in bad.stdout.splitlines() if line.startswith("FAIL")]
    event_id = json.loads(street_day.events_path.read_bytes().splitlines()[victim])["event_id"]
    assert any(f"{tampered}:{victim + 1}" in f and event_id in f and "altered after it was signed" in f for f in fails), fails
    crop_fails = [f for f in fails if f"evidence {names[1]}" in f]
    assert crop_fails and all("altered" in f for f in crop_fails), fails
    assert not any(f"evidence {names[0]}" in f for f in fails)
    assert f"{n} verified" not in bad.stdout and "1 failed" in bad.stdout


def test_verify_usage_errors_are_one_line(tmp_path: Path) -> None:
    r = _agent("verify", str(tmp_path / "x.jsonl"), "--keys", str(tmp_path / "nope.json"))
    assert r.returncode == 2
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.broker
def test_verify_a_live_subscription(street_day: StreetDay, mosquitto) -> None:  # type: ignore[no-untyped-def]
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    docs = [e for e in street_day.events if e["kind"] in ("parking_violation", "dispatch_task")][:6]
    payloads = [json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode() for d in docs]
    altered = dict(docs[2], severity="info" if docs[2]["severity"] != "info" else "minor")
    payloads[2] = json.dumps(altered, separators=(",", ":"), ensure_ascii=False).encode()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "verify", "--mqtt", f"127.0.0.1:{mosquitto.port}", "--topic", "edge/#",
         "--keys", str(street_day.keys_dir), "--count", str(len(payloads) + 1), "--idle", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while "subscribed" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "subscribed" in line, line
        c = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-pub")
        c.connect("127.0.0.1", mosquitto.port)
        c.loop_start()
        c.publish("edge/demo-street/demo-pole-1/status", b"online", qos=1).wait_for_publish(5)
        for p in payloads:
            c.publish("edge/demo-street/demo-pole-1/events/x", p, qos=1).wait_for_publish(5)
        out, err = proc.communicate(timeout=30)
        c.loop_stop()
        c.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and docs[2]["event_id"] in fails[0] and "signature does not match" in fails[0], out
    assert f"{len(payloads)} record(s): {len(payloads) - 1} verified, 1 failed" in out
    assert "1 message(s) that are not events skipped" in out


def test_verifier_counts(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", "pole-1")
    signer = store.load_or_create()
    doc = _event(EventBuilder("pole-1", "lab")).to_dict()
    doc["sig"] = signer.signature(doc)
    v = Verifier(_ring(store))
    assert v.check_text(json.dumps(doc), "line 1") == []
    assert v.check_text("{not json", "line 2")[0].reason.startswith("cannot be parsed")
    assert v.records == 2 and v.verified == 1 and v.failed == 1 and not v.ok


def test_keys_show_and_rotate_commands(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load((REPO / "firmware_sim" / "street" / "demo-street.yaml").read_text(encoding="utf-8"))
    data["uplink"] = {"outbox_path": str(tmp_path / "state" / "outbox.sqlite")}
    cfg = tmp_path / "site.yaml"
    cfg.write_text(yaml.safe_dump(data), encoding="utf-8")
    first = _agent("keys", "show", "--config", str(cfg))
    assert first.returncode == 0, first.stderr
    assert "created signing key" in first.stderr
    doc = json.loads(first.stdout)
    assert doc["device_id"] == "demo-pole-1" and len(doc["keys"]) == 1
    assert (tmp_path / "state" / "keys" / "signing.key").exists()  # keys/ beside the outbox by default
    pem = _agent("keys", "show", "--config", str(cfg), "--pem")
    assert pem.returncode == 0 and "BEGIN PUBLIC KEY" in pem.stdout and doc["keys"][0]["kid"] in pem.stdout
    assert "created" not in pem.stderr
    rot = _agent("keys", "rotate", "--config", str(cfg))
    assert rot.returncode == 0 and "restart the agent" in rot.stdout
    after = json.loads(_agent("keys", "show", "--config", str(cfg)).stdout)
    assert after["keys"][0]["kid"] == doc["keys"][0]["kid"] and len(after["keys"]) == 2
    assert after["keys"][0]["retired"] is not None and after["keys"][1]["retired"] is None
