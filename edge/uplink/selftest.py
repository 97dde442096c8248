"""A producer process built from the real modules, for the delivery tests and field checks.

    python -m edge.uplink.selftest --uplink '{"mqtt": {"host": "127.0.0.1", "port": 1883}, ...}' \\
        --device pole-1 --site lab --until-seq 500 --rate 200

It builds ``uplink_test`` events (every ``--alarm-every``-th one ``major``, every
``--feature-every``-th one a ``features``-priority row), puts them in the outbox and runs the
``Uplink`` until the outbox has produced ``--until-seq`` events and, with ``--drain``, until it is
empty. Restarted after a crash, it carries on from the outbox's persisted ``seq``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from edge.config.uplink import UplinkConfig
from edge.events.builder import EventBuilder
from edge.events.schema import Event
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink

log = logging.getLogger("edge.uplink.selftest")


def make_event(builder: EventBuilder, n: int, *, alarm: bool, feature: bool, pad: int = 0) -> Event:
    now = time.time()
    payload: dict[str, Any] = {"n": n, "sent_ts": now}
    if pad:
        payload["note"] = "x" * pad
    tr = EventDraft(
        kind="uplink_test",
        phase="instant",
        key=f"selftest-{n}",
        t=time.monotonic(),
        ts=now,
        camera_id="cam0",
        severity="major" if alarm else "info",
        severity_reason="self-test alarm" if alarm else "",
        payload=payload,
    )
    ev = builder.build(tr)
    if feature:  # same body, routed and prioritised as a feature record
        ev = ev.model_copy(update={"kind": "features"})
    return ev


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.uplink.selftest", description=__doc__.split("\n")[0])
    ap.add_argument("--uplink", required=True, help="UplinkConfig as JSON text or a path to a JSON file")
    ap.add_argument("--device", default="pole-1")
    ap.add_argument("--site", default="lab")
    ap.add_argument("--until-seq", type=int, required=True, help="produce until the outbox seq reaches this")
    ap.add_argument("--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)")
    ap.add_argument("--alarm-every", type=int, default=0, help="every Nth event is severity major (0 = none)")
    ap.add_argument(
        "--feature-every", type=int, default=0, help="every Nth event is a feature record (0 = none)"
    )
    ap.add_argument("--drain", action="store_true", help="after producing, wait until the outbox is empty")
    ap.add_argument("--drain-timeout", type=float, default=60.0)
    ap.add_argument("--no-uplink", action="store_true", help="only fill the outbox, do not send")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    text = args.uplink if args.uplink.lstrip().startswith("{") else Path(args.uplink).read_text()
    cfg = UplinkConfig.model_validate(json.loads(text))
    outbox = Outbox(
        cfg.outbox_path,
        cfg.outbox_max_bytes,
        topic_prefix=cfg.topic_prefix,
        group_commit_s=cfg.group_commit_s,
    )
    builder = EventBuilder(
        args.device, args.site, config_hash="0" * 12, incidents=outbox, clock_quality=lambda: "ntp"
    )
    uplink = None if args.no_uplink else Uplink(cfg, args.device, args.site, outbox)
    stopping = False

    def _term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _term)
    if uplink:
        uplink.start()
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    next_t = time.monotonic()
    while not stopping and outbox.last_seq < args.until_seq:
        n = outbox.last_seq + 1
        alarm = args.alarm_every > 0 and n % args.alarm_every == 0
        feature = not alarm and args.feature_every > 0 and n % args.feature_every == 0
        outbox.put(make_event(builder, n, alarm=alarm, feature=feature))
        if period:
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    outbox.flush()
    print(json.dumps({"produced_until": outbox.last_seq}), flush=True)
    drained = True
    if uplink:
        if args.drain:
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline and not stopping and uplink.stats()["outbox_pending"] > 0:
                time.sleep(0.05)
        drained = uplink.stop(flush_timeout_s=2.0)
        print(json.dumps({"stats": uplink.stats()}), flush=True)
    outbox.close()
    return 0 if drained or not args.drain else 3


if __name__ == "__main__":
    raise SystemExit(main())
