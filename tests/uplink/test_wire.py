"""What a box spends on the wire: feature shaping before the outbox, zlib on the wire, MQTT 5 topic
aliases, the shared reconnect rounds, and many uplinks driven from one thread."""

from __future__ import annotations

import json
import random
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from edge.config.uplink import FeatureUplinkConfig, UplinkConfig
from edge.events.builder import EventBuilder
from edge.events.schema import validate_event
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink, reconnect_round
from edge.uplink.shaping import ZLIB_CONTENT_TYPE, FeatureShaper, decode_from_wire, encode_for_wire
from firmware_sim.wirecount import CountingProxies
from tests.fixtures.broker import Broker
from tests.uplink.helpers import Consumer, wait_until

T0 = 1795390200.0


def features(zone_count: int, ts: float, cam: str = "cam0") -> EventDraft:
    zone = {
        "kind": "bike_bay", "count": {"bicycle": zone_count}, "count_mean": {"bicycle": float(zone_count)},
        "count_max": {"bicycle": zone_count}, "occupancy": zone_count / 15, "dwell_mean_s": 40.0, "dwell_max_s": 300.0,
        "density": None, "density_max": None, "los": None, "in": 1, "out": 0, "motion_energy": None,
    }  # fmt: skip
    payload = {"interval_s": 60.0, "zones": {"bay-3": zone}, "lines": {},
               "grid": {"cols": 16, "rows": 9, "cells": [[(r * c) % 23 for c in range(16)] for r in range(9)]}}  # fmt: skip
    return EventDraft(kind="features", phase="instant", key=f"f:{cam}", t=ts, ts=ts, camera_id=cam, payload=payload)


def alarm(ts: float) -> EventDraft:
    return EventDraft(kind="tamper", phase="start", key="door", t=ts, ts=ts, severity="major",
                      severity_reason="door opened", payload={"source": "enclosure_door", "line": "tamper_switch", "pin": 27, "state": "open"})  # fmt: skip


def test_omitted_parts_leave_a_valid_record_that_says_what_is_missing(tmp_path: Path) -> None:
    shaper = FeatureShaper(FeatureUplinkConfig(omit=["grid", "zones.count_mean", "zones.dwell_mean_s"]))
    ob = Outbox(tmp_path / "o.sqlite", shaper=shaper)
    ev = ob.put(EventBuilder("pole-1", "lab").build(features(3, T0)))
    assert ev is not None
    doc = ev.to_dict()
    validate_event(doc)  # still an edge.event/1 features record
    assert "grid" not in doc["payload"] and doc["payload"]["omitted"] == ["grid", "zones.count_mean", "zones.dwell_mean_s"]
    zone = doc["payload"]["zones"]["bay-3"]
    assert "count_mean" not in zone and "dwell_mean_s" not in zone and zone["count"] == {"bicycle": 3}
    assert len(ev.to_json()) < len(EventBuilder("pole-1", "lab").build(features(3, T0)).to_json()) - 300
    with pytest.raises(ValueError, match="unknown feature part"):
        FeatureUplinkConfig(omit=["zones.colour"])


def test_only_on_change_holds_back_repeats_without_spending_a_seq(tmp_path: Path) -> None:
    shaper = FeatureShaper(FeatureUplinkConfig(only_on_change=True, max_silence_s=300))
    ob = Outbox(tmp_path / "o.sqlite", shaper=shaper)
    b = EventBuilder("pole-1", "lab")
    counts = [3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4]  # one minute apart
    stored = []
    for i, c in enumerate(counts):
        ev = ob.put(b.build(features(c, T0 + 60 * i)))
        stored.append(None if ev is None else (ev.seq, ev.payload.get("unchanged_before")))
    ob.put(b.build(alarm(T0 + 700)))  # other kinds are never held back
    # sent: the first 3, the change to 4, then 4 again once max_silence_s (300 s) has passed since the last sent
    assert [s for s in stored if s] == [(1, None), (2, 2), (3, 4)]
    assert stored[3] == (2, 2) and stored[8] == (3, 4)
    assert ob.last_seq == 4 and shaper.held_back == 8  # no seq spent on what was held back: no gaps upstream
    ob.close()


def test_compression_is_smaller_and_round_trips_and_refuses_bombs() -> None:
    body = EventBuilder("pole-1", "lab").build(features(7, T0)).to_json()
    packed, ctype = encode_for_wire("features", body, {"features"})
    assert ctype == ZLIB_CONTENT_TYPE and len(packed) < len(body) * 0.7
    assert decode_from_wire(packed, ctype) == body
    assert encode_for_wire("tamper", body, {"features"}) == (body, None)
    assert decode_from_wire(body, None) == body
    with pytest.raises(ValueError, match="inflates beyond"):
        decode_from_wire(zlib.compress(b"0" * (20 * 1024 * 1024)), ZLIB_CONTENT_TYPE)
    with pytest.raises(ValueError, match="not a zlib stream"):
        decode_from_wire(b"{not zlib", ZLIB_CONTENT_TYPE)


def _uplink(tmp: Path, port: int, name: str, **mqtt: Any) -> tuple[Uplink, Outbox, EventBuilder]:
    cfg = UplinkConfig.model_validate(
        {"outbox_path": str(tmp / f"{name}.sqlite"), "jsonl_path": str(tmp / f"{name}.jsonl"),
         "mqtt": {"host": "127.0.0.1", "port": port, "backoff_min_s": 0.1, "backoff_max_s": 0.5, **mqtt}}
    )  # fmt: skip
    ob = Outbox.from_config(cfg)
    return Uplink(cfg, name, "lab", ob), ob, EventBuilder(name, "lab", incidents=ob)


@pytest.mark.broker
def test_features_travel_compressed_and_arrive_intact_while_the_sink_keeps_json(mosquitto: Broker, tmp_path: Path) -> None:
    c = Consumer(mosquitto.host, mosquitto.port).start()
    up, ob, b = _uplink(tmp_path, mosquitto.port, "pole-1")
    up.start()
    sent = [ob.put(b.build(features(n, T0 + 60 * n))) for n in range(5)]
    ob.put(b.build(alarm(T0 + 400)))
    wait_until(lambda: len(c.events()) >= 6, 20, "six events at the consumer")
    up.stop(2.0)
    got = {e["event_id"]: e for e in c.events()}
    for ev in sent:
        assert ev is not None and got[ev.event_id] == ev.to_dict()
    assert c.content_types.count(ZLIB_CONTENT_TYPE) == 5  # the features; the alarm and status are plain
    sink = [json.loads(line) for line in (tmp_path / "pole-1.jsonl").read_text().splitlines()]
    assert len(sink) == 6 and {e["kind"] for e in sink} == {"features", "tamper"}
    c.stop()
    ob.close()


@pytest.mark.broker
def test_topic_aliases_save_the_topic_on_every_repeat_and_subscribers_see_full_topics(mosquitto: Broker, tmp_path: Path) -> None:
    c = Consumer(mosquitto.host, mosquitto.port).start()
    proxies = CountingProxies(mosquitto.host, mosquitto.port)
    n = 40
    wire = {}
    for aliases in (True, False):
        name = f"pole-{'a' if aliases else 'b'}"
        up, ob, b = _uplink(tmp_path, proxies.add(name), name, topic_aliases=aliases)
        up.start()
        for i in range(n):
            ob.put(b.build(alarm(T0 + i)))
        wait_until(lambda name=name: sum(1 for t, _, _ in c.messages if f"/{name}/events/" in t) >= n, 20, f"{n} from {name}")
        up.stop(2.0)
        ob.close()
        wire[aliases] = proxies.counts[name].up_bytes
    topics = {t for t, _, _ in c.messages if "/events/" in t}
    assert topics == {"edge/lab/pole-a/events/tamper", "edge/lab/pole-b/events/tamper"}
    saved = wire[False] - wire[True]
    topic_len = len("edge/lab/pole-a/events/tamper")
    # every repeat carries a 3-byte alias property instead of the topic (the first carries both)
    assert saved >= (n - 1) * (topic_len - 3) - 8, wire
    proxies.close()
    c.stop()


def test_reconnect_rounds_spread_a_fleet_over_the_window_then_wider_rounds() -> None:
    rng = random.Random(3)
    window, cap, boxes = 10.0, 30.0, 2000
    lost_at = 100.0
    first = [reconnect_round(lost_at, lost_at, 0.0, window, cap, rng) for _ in range(boxes)]
    delays = sorted(d for d, _, _ in first)
    assert 0 <= delays[0] and delays[-1] <= window
    per_second = [sum(1 for d in delays if s <= d < s + 1) for s in range(int(window))]
    assert max(per_second) <= 1.3 * boxes / window  # uniform: about N / window per second, no spike
    # a box whose round-0 attempt failed tries again in round 1: [10, 30) after the loss, twice as wide
    d0, end0, w0 = first[0]
    d1, end1, w1 = reconnect_round(lost_at + d0 + 0.01, end0, w0, window, cap, rng)
    assert (end0, w0) == (lost_at + window, window) and w1 == 20.0
    assert lost_at + window <= lost_at + d0 + 0.01 + d1 <= lost_at + 30.0
    _, _, w2 = reconnect_round(end1, end1, w1, window, cap, rng)
    assert w2 == cap  # capped at backoff_max_s


@pytest.mark.broker
def test_a_hundred_uplinks_driven_from_one_thread_deliver_everything(mosquitto: Broker, tmp_path: Path) -> None:
    from firmware_sim.fleet import Driver

    c = Consumer(mosquitto.host, mosquitto.port).start()
    boxes: list[Any] = []
    threads_before = threading.active_count()

    class Box:
        def __init__(self, i: int) -> None:
            self.uplink, self.outbox, self.builder = _uplink(tmp_path, mosquitto.port, f"box-{i:03d}")

    for i in range(100):
        boxes.append(Box(i))
    for bx in boxes:
        bx.uplink.start(thread=False)
    assert threading.active_count() == threads_before  # no thread per box
    driver = Driver(boxes)  # type: ignore[arg-type]
    for k in range(3):
        for bx in boxes:
            bx.outbox.put(bx.builder.build(alarm(T0 + k)))
    deadline = time.monotonic() + 30
    while (len(c.events()) < 300 or any(bx.outbox.pending() for bx in boxes)) and time.monotonic() < deadline:
        driver.turn(0.05, sweep=True)
    assert len({e["event_id"] for e in c.events()}) == 300
    assert all(bx.outbox.pending() == 0 for bx in boxes)
    for bx in boxes:
        bx.uplink.stop(0.5)
        bx.outbox.close()
    c.stop()


@pytest.mark.broker
def test_a_message_nobody_subscribed_to_stays_in_the_outbox_until_the_platform_listens(mosquitto: Broker, tmp_path: Path) -> None:
    """A PUBACK with 'no matching subscribers' (0x10) is not a delivery: mosquitto 2.0 does not restore
    shared subscriptions after a restart, and boxes that reconnect first would otherwise lose their backlog."""
    up, ob, b = _uplink(tmp_path, mosquitto.port, "pole-1", unrouted_retry_s=0.5)
    up.start()
    wait_until(lambda: up.connected, 10, "the box to connect")
    first = ob.put(b.build(alarm(T0)))
    wait_until(lambda: up.stats()["unrouted"] >= 2, 10, "the broker to say twice that nobody listens")
    assert ob.pending() == 1  # kept, and tried again
    c = Consumer(mosquitto.host, mosquitto.port).start()
    wait_until(lambda: ob.pending() == 0, 10, "the outbox to drain once the platform subscribed")
    assert first is not None and [e["event_id"] for e in c.events()] == [first.event_id]
    up.stop(1.0)
    ob.close()
    c.stop()


@pytest.mark.broker
def test_an_uplink_works_when_its_socket_number_is_above_1024(mosquitto: Broker, tmp_path: Path) -> None:
    """A fleet process holds hundreds of sessions: the connection wait uses poll, not select (FD_SETSIZE)."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1400:
        pytest.skip(f"the file-descriptor limit ({hard}) is too low to open 1400 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1400), hard))
    c = Consumer(mosquitto.host, mosquitto.port).start()  # paho's own loop (the test's consumer) uses select
    filler = [socket.socketpair() for _ in range(560)]  # fds up to ~1130 taken
    try:
        up, ob, b = _uplink(tmp_path, mosquitto.port, "pole-1")
        up.start()
        wait_until(lambda: up.connected, 10, "the box to connect")
        assert max(s.fileno() for s in up.wait_handles()[0]) > 1024
        ev = ob.put(b.build(alarm(T0)))
        wait_until(lambda: ob.pending() == 0, 10, "the event to be acknowledged")
        assert ev is not None and [e["event_id"] for e in c.events()] == [ev.event_id]
        up.stop(1.0)
        ob.close()
        c.stop()
    finally:
        for a, z in filler:
            a.close()
            z.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
