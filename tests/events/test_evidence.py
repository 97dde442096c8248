"""Evidence crops: the writer's hash reaches the signed event, retention by age and bytes, and the
case categories the builder adds."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from edge.agent.evidence import EvidenceWriter
from edge.config.site import EvidenceConfig
from edge.events.builder import EventBuilder
from edge.events.categories import MOTOR, NON_MOTOR
from edge.events.evidence import EvidenceRef, check_crop, prune_evidence
from edge.events.schema import kind_schemas, validate_event
from edge.types import EventDraft

MB = 1024 * 1024


def _crop(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def _violation(evidence: object, cls: str = "car") -> EventDraft:
    payload = dict(kind_schemas()["parking_violation"]["examples"][0], evidence=evidence)
    payload["class"] = cls
    payload.pop("case_category", None)
    return EventDraft(
        kind="parking_violation", phase="start", key="pv:1", t=0.0, ts=1795392000.0, camera_id="cam0",
        zone_id="kerb", severity="major", payload=payload,
    )  # fmt: skip


def test_writer_returns_the_sha256_of_the_file_it_wrote(tmp_path: Path) -> None:
    w = EvidenceWriter(EvidenceConfig(enabled=True, path=str(tmp_path)))
    ref = w.save(_crop(), "parking_violation:cam0:kerb:17:1795392000", 0.0)
    assert isinstance(ref, EvidenceRef)
    data = (tmp_path / ref).read_bytes()
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert check_crop(tmp_path, ref, ref.sha256) is None
    (tmp_path / ref).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert (check_crop(tmp_path, ref, ref.sha256) or "").startswith("altered")
    assert (check_crop(tmp_path, "gone.jpg", ref.sha256) or "").startswith("missing")
    assert "not a plain file name" in (check_crop(tmp_path, "../etc/passwd", ref.sha256) or "")


def test_builder_puts_the_crop_hash_into_the_signed_payload(tmp_path: Path) -> None:
    b = EventBuilder("pole-1", "lab")
    ref = EvidenceRef("a.jpg", "ab" * 32)
    ev = b.build(_violation(ref)).to_dict()
    validate_event(ev)
    assert ev["payload"]["evidence"] == "a.jpg" and ev["payload"]["evidence_sha256"] == "ab" * 32
    plain = b.build(_violation(None)).to_dict()
    assert "evidence_sha256" not in plain["payload"]


@pytest.mark.parametrize(
    ("kind", "cls", "expected"),
    [
        ("parking_violation", "car", MOTOR),
        ("parking_violation", "truck", MOTOR),
        ("parking_violation", "motorcycle", MOTOR),
        ("parking_violation", "bicycle", NON_MOTOR),
        ("bike_outside_bay", "bicycle", NON_MOTOR),
        ("bike_bay_overflow", None, NON_MOTOR),
        ("bike_bay_status", None, None),
        ("crowd_surge", None, None),
    ],
)
def test_case_category_on_the_events_that_are_such_cases(kind: str, cls: str | None, expected: str | None) -> None:
    payload = dict(kind_schemas()[kind]["examples"][0])
    payload.pop("case_category", None)
    if cls is not None:
        payload["class"] = cls
    tr = EventDraft(kind=kind, phase="instant", key="k", t=0.0, ts=1795392000.0, camera_id="cam0", zone_id="z", payload=payload)
    ev = EventBuilder("pole-1", "lab").build(tr).to_dict()
    validate_event(ev)
    assert ev["payload"].get("case_category") == expected


def _file(d: Path, name: str, size: int, age_s: float, now: float) -> Path:
    p = d / name
    p.write_bytes(b"x" * size)
    os.utime(p, (now - age_s, now - age_s))
    return p


def test_prune_by_age_then_oldest_first_by_bytes(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    old = _file(tmp_path, "old.jpg", 10, 3 * 86400, now)
    a = _file(tmp_path, "a.jpg", 400, 300, now)
    b = _file(tmp_path, "b.jpg", 400, 200, now)
    c = _file(tmp_path, "c.jpg", 400, 100, now)
    other = _file(tmp_path, "notes.txt", 5000, 10 * 86400, now)  # not evidence: never touched
    res = prune_evidence(tmp_path, max_age_s=2 * 86400, max_bytes=900, now=now)
    assert not old.exists() and not a.exists() and b.exists() and c.exists() and other.exists()
    assert (res.deleted, res.kept, res.kept_bytes) == (2, 2, 800)


def test_writer_enforces_the_byte_limit_and_the_age_limit(tmp_path: Path) -> None:
    now = time.time()
    stale = _file(tmp_path, "stale.jpg", 100, 8 * 86400, now)
    filler = [_file(tmp_path, f"fill{i}.jpg", MB // 2, 3600 - i, now) for i in range(3)]  # 1.5 MB, older than any new crop
    w = EvidenceWriter(EvidenceConfig(enabled=True, path=str(tmp_path), retention_days=7, max_bytes=MB))
    assert not stale.exists()  # age limit applied at start
    assert not filler[0].exists() and filler[1].exists()  # oldest first until under 1 MB
    ref = w.save(_crop(1), "pv:1", 0.0)
    assert ref is not None and (tmp_path / ref).exists()
    total = sum(p.stat().st_size for p in tmp_path.glob("*.jpg"))
    assert total <= MB
    assert not filler[1].exists()  # the new crop pushed the directory over the limit: the oldest went at once
