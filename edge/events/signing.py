"""Signed events: each box holds an Ed25519 key and signs every event where it becomes final.

* **What is signed.** The RFC 8785 canonical bytes (``edge.events.canonical``) of the whole
  envelope without its ``sig`` member, ``seq`` included: the outbox signs each event in ``put``
  right after it assigns the ``seq``. The detached signature travels in the envelope as
  ``"sig": {"alg": "Ed25519", "kid": "<16 hex>", "value": "<base64url, no padding>"}``.
* **Why per event, not per outbox batch.** Every event travels alone (one MQTT message, one
  JSONL line, deduped on ``event_id``), the outbox may evict single rows, and a consumer may keep
  only some kinds: a batch signature could not be checked on what a consumer actually holds.
  Cost: see ``python -m edge.events.sign_bench``.
* **Keys.** ``KeyStore`` keeps the private key in ``<key_dir>/signing.key`` (PKCS#8 PEM, mode 0600,
  made on first start) or uses a provisioned PEM file, and lists every public key the box has
  used in ``<key_dir>/public_keys.json`` (``edge.keys/1``): the file a city registers. Rotation
  writes a new private key and marks the old public key ``retired``; it stays in the file, so old
  events still verify. The key id is the first 16 hex digits of SHA-256 of the raw public key.
* **Verifying.** ``KeyRing`` holds the public keys of one or more devices and says, for one
  event document, why it fails (or None).

The key material is handled only through the ``cryptography`` package (no hand-written crypto).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import EdgeError
from edge.events.canonical import CanonicalError, canonical_json
from edge.events.schema import Event, Signature

ALG = "Ed25519"
SIG_FIELD = "sig"
KEYS_FORMAT = "edge.keys/1"
PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "public_keys.json"


class SigningError(EdgeError):
    """The box's signing key cannot be created, read or rotated (path, permissions, format)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw 32-byte public key."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def signed_bytes(doc: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the canonical form of the document without ``sig``."""
    return canonical_json({k: v for k, v in doc.items() if k != SIG_FIELD})


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DeviceSigner:
    """Signs event documents with one private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    def signature(self, doc: Mapping[str, Any]) -> dict[str, str]:
        """The ``sig`` member for ``doc`` (any ``sig`` already in it is ignored)."""
        try:
            data = signed_bytes(doc)
        except CanonicalError as exc:
            raise SigningError(f"cannot sign event {doc.get('event_id')!r}: {exc}") from None
        return {"alg": ALG, "kid": self.kid, "value": b64url(self._key.sign(data))}

    def sign_event(self, event: Event) -> Event:
        return event.model_copy(update={"sig": Signature(**self.signature(event.to_dict()))})


# ---------------------------------------------------------------------------------- key store
def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a PKCS#8 PEM with mode 0600 from the start (never briefly world-readable), atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(path.name + ".new")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) file, refusing one that anybody may read."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        data = p.read_bytes()
    except FileNotFoundError:
        raise SigningError(f"signing key {p} does not exist; check signing.key_file or provision the key") from None
    except OSError as exc:
        raise SigningError(f"cannot read signing key {p} ({exc.strerror}); check its owner and mode") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise SigningError(
            f"signing key {p} is readable or writable by every user (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {p}"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"signing key {p} is not an unencrypted PEM private key ({exc}); "
            "provision an Ed25519 key in PKCS#8 PEM (openssl genpkey -algorithm ed25519)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"signing key {p} is a {type(key).__name__}, not an Ed25519 key")
    return key


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    public_key: str  # base64url of the raw 32 bytes
    created: str
    retired: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kid": self.kid, "alg": ALG, "public_key": self.public_key, "created": self.created, "retired": self.retired}


class KeyStore:
    """The box's signing key and the list of every public key it has used, in one directory."""

    def __init__(self, key_dir: str | os.PathLike[str], device_id: str, site_id: str = "") -> None:
        self.dir = Path(key_dir)
        self.device_id = device_id
        self.site_id = site_id

    @property
    def private_path(self) -> Path:
        return self.dir / PRIVATE_NAME

    @property
    def public_path(self) -> Path:
        return self.dir / PUBLIC_NAME

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SigningError(
                f"cannot create the key directory {self.dir} ({exc.strerror}); check signing.key_dir and permissions"
            ) from None

    def records(self) -> list[KeyRecord]:
        if not self.public_path.exists():
            return []
        doc = read_public_keys(self.public_path)
        return [
            KeyRecord(str(k["kid"]), str(k["public_key"]), str(k.get("created", "")), k.get("retired"))
            for k in doc["keys"]
        ]

    def _write_records(self, records: list[KeyRecord]) -> None:
        doc = {
            "format": KEYS_FORMAT,
            "device_id": self.device_id,
            "site_id": self.site_id,
            "keys": [r.as_dict() for r in records],
        }
        tmp = self.public_path.with_name(PUBLIC_NAME + ".new")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.public_path)

    def _register(self, key: Ed25519PrivateKey) -> None:
        """Make ``key`` the current one in public_keys.json; any other current key becomes retired."""
        pub = key.public_key()
        kid = key_id(pub)
        records = self.records()
        now = _now_iso()
        if any(r.kid == kid and r.retired is None for r in records):
            return
        out = [r if r.retired is not None or r.kid == kid else KeyRecord(r.kid, r.public_key, r.created, now) for r in records]
        out = [r for r in out if r.kid != kid]
        out.append(KeyRecord(kid, b64url(raw_public(pub)), now))
        self._write_records(out)

    def load_or_create(self, provisioned: str | None = None) -> DeviceSigner:
        """The signer for this box: the provisioned key, else ``signing.key`` (made on first start)."""
        self._ensure_dir()
        try:
            if provisioned is not None:
                key = load_private_key(provisioned)
            elif self.private_path.exists():
                key = load_private_key(self.private_path)
            else:
                key = Ed25519PrivateKey.generate()
                _write_private(self.private_path, key)
            self._register(key)
        except OSError as exc:
            raise SigningError(f"cannot write in the key directory {self.dir} ({exc}); check its permissions") from None
        return DeviceSigner(key)

    def rotate(self) -> tuple[str | None, str]:
        """A new private key replaces ``signing.key``; the old public key stays listed as retired.
        Returns (old kid or None, new kid). The running agent keeps its key until it restarts."""
        self._ensure_dir()
        old = load_private_key(self.private_path) if self.private_path.exists() else None
        key = Ed25519PrivateKey.generate()
        try:
            if old is not None:
                self._register(old)  # make sure the key being retired is listed before it is gone
            _write_private(self.private_path, key)
            self._register(key)
        except OSError as exc:
            raise SigningError(f"cannot write in the key directory {self.dir} ({exc}); check its permissions") from None
        return (key_id(old.public_key()) if old is not None else None), key_id(key.public_key())

    def public_document(self) -> dict[str, Any]:
        return read_public_keys(self.public_path)


def read_public_keys(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A public keys file (``edge.keys/1``), checked; SigningError names what is wrong."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SigningError(f"public keys file {p} does not exist; print it on the box with `edge-agent keys show`") from None
    except (OSError, ValueError) as exc:
        raise SigningError(f"public keys file {p} cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != KEYS_FORMAT or not isinstance(doc.get("keys"), list):
        raise SigningError(f"{p} is not an {KEYS_FORMAT} public keys file (format, device_id, keys)")
    if not isinstance(doc.get("device_id"), str) or not doc["device_id"]:
        raise SigningError(f"{p}: device_id is missing")
    for i, k in enumerate(doc["keys"]):
        if not isinstance(k, dict) or not isinstance(k.get("kid"), str) or not isinstance(k.get("public_key"), str):
            raise SigningError(f"{p}: keys[{i}] needs kid and public_key")
        if k.get("alg", ALG) != ALG:
            raise SigningError(f"{p}: keys[{i}].alg is {k.get('alg')!r}; only {ALG} is supported")
    return doc


class KeyRing:
    """Public keys of one or more devices: (device_id, kid) -> key."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], Ed25519PublicKey] = {}
        self.devices: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> KeyRing:
        ring = cls()
        for path in paths:
            p = Path(path)
            files = sorted(p.glob("*.json")) if p.is_dir() else [p]
            if not files:
                raise SigningError(f"{p}: no public keys files (*.json) in this directory")
            for f in files:
                ring.add_document(read_public_keys(f), source=str(f))
        return ring

    def add_document(self, doc: Mapping[str, Any], source: str = "") -> None:
        device = str(doc["device_id"])
        for i, k in enumerate(doc["keys"]):
            try:
                raw = b64url_decode(str(k["public_key"]))
                pub = Ed25519PublicKey.from_public_bytes(raw)
            except (ValueError, binascii.Error):
                raise SigningError(f"{source}: keys[{i}].public_key is not a base64url Ed25519 public key") from None
            if key_id(pub) != k["kid"]:
                raise SigningError(f"{source}: keys[{i}].kid {k['kid']} does not match its public key ({key_id(pub)})")
            self._keys[(device, str(k["kid"]))] = pub
            self.devices.setdefault(device, []).append(str(k["kid"]))

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, doc: Mapping[str, Any]) -> str | None:
        """Why ``doc`` does not carry a valid signature of its device, or None when it does."""
        sig = doc.get(SIG_FIELD)
        if sig is None:
            return "unsigned: the record has no sig member"
        if not isinstance(sig, Mapping) or not all(isinstance(sig.get(f), str) for f in ("alg", "kid", "value")):
            return "malformed sig member: needs alg, kid and value strings"
        if sig["alg"] != ALG:
            return f"unsupported signature algorithm {sig['alg']!r} (expected {ALG})"
        device = doc.get("device_id")
        if not isinstance(device, str) or device not in self.devices:
            known = ", ".join(sorted(self.devices)) or "none"
            return f"no public keys for device {device!r} (keys loaded for: {known})"
        key = self._keys.get((device, sig["kid"]))
        if key is None:
            return (
                f"unknown key id {sig['kid']} for device {device} "
                f"(its public keys file lists {', '.join(self.devices[device])})"
            )
        try:
            value = b64url_decode(sig["value"])
        except (ValueError, binascii.Error):
            return "malformed signature value (not base64url)"
        try:
            data = signed_bytes(doc)
        except CanonicalError as exc:
            return f"record has no canonical form: {exc}"
        try:
            key.verify(value, data)
        except InvalidSignature:
            return f"signature does not match: the record was altered after it was signed (key {sig['kid']})"
        return None


# ---------------------------------------------------------------------------------- verifying a stream
@dataclass(frozen=True, slots=True)
class Failure:
    """One record (or one evidence crop) that failed, and why."""

    where: str  # "line 17", "message 4 on edge/site/dev/events/x"
    what: str  # "seq=1042 kind=parking_violation event_id=..." or "evidence <file> (cited by ...)"
    reason: str
    evidence: bool = False  # a crop that does not match its (verified) event, not a failed record

    def line(self) -> str:
        return f"FAIL {self.where} {self.what}: {self.reason}"


@dataclass
class Verifier:
    """Checks records one by one against a KeyRing, and crops against the events that cite them."""

    ring: KeyRing
    evidence_dir: str | None = None
    records: int = 0
    verified: int = 0
    skipped: int = 0  # messages that are not edge.event envelopes (status, replies) on a live topic
    evidence_checked: int = 0
    evidence_ok: int = 0
    evidence_missing: int = 0
    failures: list[Failure] | None = None

    def __post_init__(self) -> None:
        if self.failures is None:
            self.failures = []

    @property
    def failed(self) -> int:
        return sum(1 for f in self.failures or [] if not f.evidence)

    @property
    def evidence_altered(self) -> int:
        return self.evidence_checked - self.evidence_ok - self.evidence_missing

    def check_text(self, text: str | bytes, where: str, *, skip_non_events: bool = False) -> list[Failure]:
        """One JSONL line or MQTT payload. Returns the failures it caused (also kept in ``failures``)."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            if skip_non_events:
                self.skipped += 1
                return []
            return self._fail(Failure(where, "(not JSON)", f"cannot be parsed ({exc})"), count=True)
        if not isinstance(doc, dict) or doc.get("schema") != "edge.event/1":
            if skip_non_events:
                self.skipped += 1
                return []
            return self._fail(Failure(where, "(not an event)", "not an edge.event/1 envelope"), count=True)
        return self.check_doc(doc, where)

    def check_doc(self, doc: Mapping[str, Any], where: str) -> list[Failure]:
        self.records += 1
        what = f"seq={doc.get('seq')} kind={doc.get('kind')} event_id={doc.get('event_id')}"
        reason = self.ring.check(doc)
        if reason is not None:
            return self._fail(Failure(where, what, reason))
        self.verified += 1
        payload = doc.get("payload")
        if self.evidence_dir is None or not isinstance(payload, Mapping):
            return []
        name, digest = payload.get("evidence"), payload.get("evidence_sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            return []
        from edge.events.evidence import check_crop

        self.evidence_checked += 1
        problem = check_crop(self.evidence_dir, name, digest)
        if problem is None:
            self.evidence_ok += 1
            return []
        if problem.startswith("missing"):
            self.evidence_missing += 1
        return self._fail(Failure(where, f"evidence {name} (cited by {what})", problem, evidence=True))

    def _fail(self, failure: Failure, *, count: bool = False) -> list[Failure]:
        if count:
            self.records += 1
        assert self.failures is not None
        self.failures.append(failure)
        return [failure]

    def summary(self) -> str:
        out = f"{self.records} record(s): {self.verified} verified, {self.failed} failed"
        if self.skipped:
            out += f"; {self.skipped} message(s) that are not events skipped"
        if self.evidence_dir is not None:
            out += (
                f"; evidence: {self.evidence_checked} crop(s) checked, {self.evidence_ok} ok, "
                f"{self.evidence_altered} altered or unreadable, {self.evidence_missing} missing"
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.failures
