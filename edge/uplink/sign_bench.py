"""What signing costs: ``python -m edge.uplink.sign_bench [--events N] [--batch B]``.

Events are the published examples of five kinds (parking_violation, features, bike_bay_status,
crowd_density, dispatch_task) built by the real ``EventBuilder``. Measured in one run, so the
ratios hold even on a loaded machine:

1. canonical bytes (RFC 8785) per event;
2. per-event signing: canonical bytes + one Ed25519 signature (``DeviceSigner.sign_event``);
3. the alternative, per-batch signing: canonical bytes of each event + one signature per ``--batch``;
4. verifying one signed event (``KeyRing.check``);
5. durable ``Outbox.put`` with group commit, without and with a signer.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.events.builder import EventBuilder
from edge.events.canonical import canonical_json
from edge.events.schema import Event, kind_schemas
from edge.events.signing import KeyRing, KeyStore
from edge.types import EventDraft
from edge.uplink.outbox import Outbox

KINDS = ("parking_violation", "features", "bike_bay_status", "crowd_density", "dispatch_task")


def sample_events(n: int) -> list[Event]:
    b = EventBuilder("bench-1", "lab", config_hash="0b7b5d0b574f")
    examples = {k: kind_schemas()[k]["examples"][0] for k in KINDS}
    out = []
    now = time.time()
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        tr = EventDraft(
            kind=kind, phase="instant", key=f"{kind}-{i}", t=float(i), ts=now + i * 0.01, camera_id="cam0",
            zone_id="zone-1", severity="info", payload=dict(examples[kind]),
        )  # fmt: skip
        out.append(b.build(tr, model={"name": "yolox_nano_416", "sha256": "695e750a5d57"}))
    return out


def _rate(n: int, t0: float) -> float:
    return n / (time.perf_counter() - t0)


def run(n: int, batch: int, workdir: Path) -> dict[str, Any]:
    events = sample_events(n)
    docs = [e.model_copy(update={"seq": i + 1}).to_dict() for i, e in enumerate(events)]
    store = KeyStore(workdir / "keys", "bench-1", "lab")
    signer = store.load_or_create()
    res: dict[str, Any] = {"events": n, "mean_event_bytes": round(sum(len(e.to_json()) for e in events) / n)}

    t0 = time.perf_counter()
    for d in docs:
        canonical_json(d)
    res["canonical_per_s"] = _rate(n, t0)

    t0 = time.perf_counter()
    signed = [signer.sign_event(e) for e in events]
    res["sign_per_event_per_s"] = _rate(n, t0)

    t0 = time.perf_counter()
    for i in range(0, n, batch):
        blob = b"".join(canonical_json(d) + b"\n" for d in docs[i : i + batch])
        signer._key.sign(blob)
    res["sign_per_batch_per_s"] = _rate(n, t0)

    ring = KeyRing()
    ring.add_document(store.public_document())
    signed_docs = [e.to_dict() for e in signed]
    t0 = time.perf_counter()
    bad = sum(ring.check(d) is not None for d in signed_docs)
    res["verify_per_s"] = _rate(n, t0)
    if bad:
        raise RuntimeError(f"{bad} freshly signed events did not verify")

    for label, s in (("outbox_put_unsigned_per_s", None), ("outbox_put_signed_per_s", signer)):
        ob = Outbox(workdir / f"{label}.sqlite", group_commit_s=0.01, signer=s)
        t0 = time.perf_counter()
        for e in events:
            ob.put(e)
        ob.flush()
        res[label] = _rate(n, t0)
        ob.close()
    res["signed_over_unsigned_put"] = res["outbox_put_signed_per_s"] / res["outbox_put_unsigned_per_s"]
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.uplink.sign_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20000, help="events per measurement (default 20000)")
    ap.add_argument("--batch", type=int, default=100, help="events per signature for the per-batch variant")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edge-sign-bench-") as tmp:
        res = run(args.events, args.batch, Path(tmp))
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['events']} events, mean {res['mean_event_bytes']} bytes on the wire")
    for key in ("canonical_per_s", "sign_per_event_per_s", "sign_per_batch_per_s", "verify_per_s",
                "outbox_put_unsigned_per_s", "outbox_put_signed_per_s"):  # fmt: skip
        print(f"  {key:<28} {res[key]:>10,.0f} /s")
    print(f"  {'signed / unsigned put':<28} {res['signed_over_unsigned_put']:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
