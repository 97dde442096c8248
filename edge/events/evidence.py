"""Evidence crops as the events see them: a file name plus the SHA-256 of its bytes, a retention
pruner for the evidence directory, and the check of a crop against the signed event that cites it.

The JPEG writer (``edge.agent.evidence``) returns an ``EvidenceRef``: a ``str`` (the file name the
rules already pass around as the evidence reference) that also carries ``sha256``. The event
builder copies that hash into the payload (``evidence_sha256``), so it is covered by the event's
signature: a crop can then be checked against the event that cites it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EVIDENCE_SUFFIX = ".jpg"
PRUNE_EVERY_S = 60.0


class EvidenceRef(str):
    """The evidence reference put into an event (a file name) and the SHA-256 of the file's bytes."""

    sha256: str

    def __new__(cls, name: str, sha256: str) -> EvidenceRef:
        obj = super().__new__(cls, name)
        obj.sha256 = sha256
        return obj


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def evidence_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """What the builder adds to a payload that cites a crop: ``{"evidence_sha256": ...}`` or nothing."""
    ref = payload.get("evidence")
    if isinstance(ref, EvidenceRef):
        return {"evidence_sha256": ref.sha256}
    return {}


# ------------------------------------------------------------------------------ retention
@dataclass(frozen=True, slots=True)
class PruneResult:
    deleted: int
    deleted_bytes: int
    kept: int
    kept_bytes: int


def prune_evidence(directory: str | os.PathLike[str], *, max_age_s: float, max_bytes: int, now: float) -> PruneResult:
    """Delete evidence JPEGs older than ``max_age_s`` (by modification time), then the oldest ones
    until the rest fit in ``max_bytes``. Only ``*.jpg`` files directly in ``directory`` are touched."""
    files: list[tuple[float, int, str]] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if not entry.name.endswith(EVIDENCE_SUFFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                files.append((st.st_mtime, st.st_size, entry.path))
    except FileNotFoundError:
        return PruneResult(0, 0, 0, 0)
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files)
    deleted = deleted_bytes = 0
    for mtime, size, path in files:
        too_old = now - mtime > max_age_s
        if not too_old and total <= max_bytes:
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("evidence retention: cannot delete %s (%s)", path, exc.strerror)
            continue
        total -= size
        deleted += 1
        deleted_bytes += size
    return PruneResult(deleted, deleted_bytes, len(files) - deleted, total)


class EvidenceRetention:
    """Keeps an evidence directory within its limits. ``after_write(size)`` is called by the writer for
    every crop; it prunes at once when the byte limit is passed, else at most every ``PRUNE_EVERY_S``."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        retention_days: float,
        max_bytes: int,
        wall: Callable[[], float],
    ) -> None:
        self.dir = Path(directory)
        self.max_age_s = float(retention_days) * 86400.0
        self.max_bytes = int(max_bytes)
        self._wall = wall
        self._last = float("-inf")
        self._bytes = 0
        self.deleted_total = 0
        self.prune()

    def prune(self) -> PruneResult:
        now = self._wall()
        res = prune_evidence(self.dir, max_age_s=self.max_age_s, max_bytes=self.max_bytes, now=now)
        self._last, self._bytes = now, res.kept_bytes
        self.deleted_total += res.deleted
        if res.deleted:
            log.info(
                "evidence retention: deleted %d file(s), %d bytes; %d kept (%d bytes) in %s",
                res.deleted, res.deleted_bytes, res.kept, res.kept_bytes, self.dir,
            )  # fmt: skip
        return res

    def after_write(self, size: int) -> None:
        self._bytes += int(size)
        if self._bytes > self.max_bytes or self._wall() - self._last >= PRUNE_EVERY_S:
            self.prune()


# ------------------------------------------------------------------------------ checking a crop
def check_crop(directory: str | os.PathLike[str], name: str, expected_sha256: str) -> str | None:
    """Why the crop ``name`` does not match the hash its signed event gives, or None when it does."""
    if os.sep in name or (os.altsep and os.altsep in name) or name.startswith("."):
        return f"evidence reference {name!r} is not a plain file name"
    path = Path(directory) / name
    try:
        got = file_sha256(path)
    except FileNotFoundError:
        return f"missing: {path} not found (deleted by retention, or not copied)"
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})"
    if got != expected_sha256:
        return f"altered: sha256 of {path} is {got[:16]}..., the signed event says {expected_sha256[:16]}..."
    return None
