"""Evidence crops on the box: JPEG-encode an already redacted vehicle crop (the only cv2 user of analytics).

Off by default (``evidence.enabled: false``): then ``build_evidence_sink`` returns None and nothing is
written. The redaction (every person pixelated) happens before this, in ``edge.rules.redact``.
Files never leave the box here; uploading is a separate, explicitly enabled command.
``save`` returns an ``EvidenceRef`` (the file name, carrying the SHA-256 of the JPEG for the signed
event); ``EvidenceRetention`` keeps the directory within ``retention_days`` and ``max_bytes``.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from pathlib import Path

import cv2
import numpy as np

from edge.config.site import EvidenceConfig
from edge.errors import EdgeError
from edge.events.evidence import EvidenceRef, EvidenceRetention, sha256_hex
from edge.rules.redact import redacted_crop

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class EvidenceWriter:
    """Writes ``<path>/<key>.jpg``; returns the file name with its SHA-256 (the reference put into the event)."""

    def __init__(self, cfg: EvidenceConfig, quality: int = 85) -> None:
        if not cfg.enabled:
            raise EdgeError(
                "evidence is disabled in the site config (evidence.enabled: false); do not build a writer"
            )
        self.dir = Path(cfg.path)
        self.quality = int(quality)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.retention = EvidenceRetention(
            self.dir, retention_days=cfg.retention_days, max_bytes=cfg.max_bytes, wall=time.time
        )

    def save(self, crop_bgr: np.ndarray, key: str, ts: float) -> EvidenceRef | None:
        if crop_bgr.size == 0:
            return None
        name = f"{_SAFE.sub('_', key)[:180]}.jpg"
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(crop_bgr), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            log.warning("evidence: JPEG encoding failed for %s", key)
            return None
        target = self.dir / name
        tmp = target.with_suffix(".tmp")
        data = buf.tobytes()
        try:
            tmp.write_bytes(data)
            tmp.replace(target)
        except OSError as exc:
            log.warning(
                "evidence: cannot write %s (%s); check evidence.path and free space", target, exc.strerror
            )
            return None
        self.retention.after_write(len(data))
        return EvidenceRef(name, sha256_hex(data))


def build_evidence_sink(cfg: EvidenceConfig) -> EvidenceWriter | None:
    """The sink to pass to ``CameraAnalytics(..., evidence=...)``, or None when evidence is off."""
    return EvidenceWriter(cfg) if cfg.enabled else None


def save_snapshot(
    cfg: EvidenceConfig, image: np.ndarray, person_boxes: np.ndarray, *, camera_id: str, ts: float
) -> dict[str, object]:
    """The ``snapshot`` command: the whole last frame with every tracked person pixelated.

    Only called when evidence is enabled. The JPEG stays on the box unless ``evidence.upload``
    is on, in which case it also goes back in the reply (base64).
    """
    h, w = image.shape[:2]
    redacted = redacted_crop(image, np.array([0, 0, w, h], np.float32), person_boxes, margin=0.0)
    writer = EvidenceWriter(cfg)
    stamp = f"{int(ts * 1000)}"
    name = writer.save(redacted, f"snapshot_{camera_id}_{stamp}", ts)
    if name is None:
        raise EdgeError(f"snapshot: could not write a JPEG under {cfg.path}; check free space and permissions")
    out: dict[str, object] = {"camera_id": camera_id, "file": name, "width": w, "height": h, "people_redacted": len(person_boxes)}
    if cfg.upload:
        out["jpeg_base64"] = base64.b64encode((writer.dir / name).read_bytes()).decode("ascii")
    return out
