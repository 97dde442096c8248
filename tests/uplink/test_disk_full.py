"""A full disk loses nothing: the outbox on a real small filesystem (a tmpfs mount, when this process
may mount one; else the same logic with SQLite's own SQLITE_FULL from ``max_page_count``; ``EDGE_TEST_NO_MOUNT=1`` forces it) fills up,
with the broker up and then down; the disk is freed; every accepted event reaches a subscriber."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.config.uplink import UplinkConfig
from edge.events.builder import EventBuilder
from edge.events.schema import Event
from edge.types import EventDraft
from edge.uplink.outbox import Outbox
from edge.uplink.service import Uplink
from tests.fixtures.broker import Broker
from tests.uplink.helpers import Consumer, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
FS_BYTES = 8 * 1024 * 1024


@dataclass
class SmallDisk:
    """An 8 MiB filesystem that the test can fill to the last byte and free again."""

    dir: Path
    mounted: bool
    outbox: Outbox | None = None
    _fake_free: int = 4 * 1024 * 1024
    filler: list[Path] = field(default_factory=list)

    def disk_usage(self) -> Callable[[], tuple[int, int]] | None:
        """None on a real mount (the outbox measures it); else a stand-in for statvfs."""
        return None if self.mounted else (lambda: (FS_BYTES, self._fake_free))

    def fill(self) -> int:
        """Take every free byte (real), or make SQLite refuse to grow the database (fallback)."""
        if not self.mounted:
            assert self.outbox is not None
            with self.outbox._lock:  # the uplink thread uses the same connection
                pages = int(self.outbox._db.execute("PRAGMA page_count").fetchone()[0])
                self.outbox._db.execute(f"PRAGMA max_page_count={pages}")
            self._fake_free = 0
            return 0
        taken = 0
        f = self.dir / f"filler-{len(self.filler)}"
        self.filler.append(f)
        with f.open("wb", buffering=0) as out:
            for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
                while True:
                    try:
                        taken += out.write(b"\0" * chunk) or 0
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC
                        break
        assert os.statvfs(self.dir).f_bavail == 0
        return taken

    def free(self) -> None:
        if not self.mounted:
            assert self.outbox is not None
            with self.outbox._lock:
                self.outbox._db.execute("PRAGMA max_page_count=1073741823")
            self._fake_free = 4 * 1024 * 1024
            return
        for f in self.filler:
            f.unlink()
        self.filler.clear()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = False
    if not os.environ.get("EDGE_TEST_NO_MOUNT"):  # set it to run the fallback where mounting works too
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mnt)], capture_output=True)
        mounted = r.returncode == 0
    disk = SmallDisk(mnt, mounted=mounted)
    try:
        yield disk
    finally:
        if disk.mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def event(builder: EventBuilder, n: int) -> Event:
    """Every 7th an alarm, every 3rd a feature record, every 50th a health record, the rest info."""
    tr = EventDraft(
        kind="uplink_test", phase="instant", key=f"e{n}", t=0.0, ts=time.time(),
        severity="major" if n % 7 == 0 else "info", payload={"n": n, "note": "x" * 200},
    )  # fmt: skip
    ev = builder.build(tr)
    if n % 7 and n % 50 == 0:
        return ev.model_copy(update={"kind": "device_health"})
    if n % 7 and n % 3 == 0:
        return ev.model_copy(update={"kind": "features"})
    return ev


def test_full_disk_loses_nothing(small_disk: SmallDisk, mosquitto: Broker, tmp_path: Path) -> None:
    print(f"\nsmall filesystem: {'tmpfs mount' if small_disk.mounted else 'fallback: SQLite max_page_count'}")
    consumer = Consumer(mosquitto.host, mosquitto.port, client_id="disk-full-platform").start()
    cfg = UplinkConfig.model_validate({
        "outbox_path": str(small_disk.dir / "outbox.sqlite"),
        "outbox_max_bytes": 64 * 1024 * 1024,  # larger than the whole filesystem
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "backoff_min_s": 0.1, "backoff_max_s": 0.5},
    })  # fmt: skip
    ob = Outbox(cfg.outbox_path, cfg.outbox_max_bytes, disk_usage=small_disk.disk_usage())
    small_disk.outbox = ob
    assert ob.reserve_bytes == 1024 * 1024  # scaled to the 8 MiB filesystem, not a fixed 32 MiB
    up = Uplink(cfg, "pole-1", "lab", ob)
    builder = EventBuilder("pole-1", "lab", incidents=ob)
    accepted: list[int] = []
    max_held = 0

    def put(k: int) -> None:
        nonlocal max_held
        for _ in range(k):
            accepted.append(ob.put(event(builder, len(accepted) + 1)).seq)
            max_held = max(max_held, ob.stats()["held"])
            time.sleep(0.002)

    try:
        up.start()
        wait_until(lambda: up.connected, 10, "the uplink to connect")
        # 1. Broker up, the disk fills: rows wait in memory, acks that cannot commit are simply resent,
        #    and the broker session is never dropped for it.
        put(50)
        small_disk.fill()
        put(100)
        time.sleep(2.0)  # a full disk for a while, broker up
        put(20)
        assert up.stats()["reconnects"] == 1, "the disk being full never costs the broker session"
        phase1_failures = ob.stats()["write_failures"]
        # Retried about once a second, not once per PUBACK (refused deletes are not sent again).
        assert phase1_failures <= 10, phase1_failures
        small_disk.free()
        wait_until(lambda: ob.stats()["pending"] == 0, 30, "phase 1 to drain once the disk has room")
        # 2. Broker down, the disk fills again.
        mosquitto.stop()
        wait_until(lambda: not up.connected, 10, "the uplink to notice")
        put(100)
        taken = small_disk.fill()
        before_full = len(accepted)
        put(120)
        st = ob.stats()
        assert st["held"] > 0 and st["write_failures"] > phase1_failures, st
        assert st["limit_bytes"] < cfg.outbox_max_bytes  # the outbox saw the disk was full
        small_disk.free()
        wait_until(lambda: ob.stats()["held"] == 0, 10, "the held rows to be written once the disk has room")
        put(30)  # and it takes new events normally again, without a restart
        mosquitto.start()
        wait_until(lambda: ob.stats()["pending"] == 0, 60, "the outbox to drain to the broker")
        n = len(accepted)
        assert accepted == list(range(1, n + 1))
        wait_until(lambda: len(consumer.unique_seqs()) >= n, 30, f"{n} events at the subscriber")
        got = consumer.unique_seqs()
        missing = sorted(set(accepted) - set(got))
        assert missing == [], f"lost {len(missing)} accepted events, first {missing[:10]}"
        assert ob.stats()["dropped_total"] == 0
        kinds = {e["kind"] for e in consumer.events()}
        assert {"uplink_test", "features", "device_health"} <= kinds
        print(
            f"full disk: {n} events accepted, {len(got)} delivered (deduped by event_id), 0 dropped; "
            f"{before_full}..{n - 30} accepted while the disk was full ({taken} bytes taken by the filler), "
            f"up to {max_held} rows held in memory, {ob.stats()['write_failures']} failed writes "
            f"({phase1_failures} with the broker up), "
            f"broker sessions {up.stats()['reconnects']}"
        )
    finally:
        with contextlib.suppress(Exception):
            up.stop(1.0)
        with contextlib.suppress(Exception):
            small_disk.free()
        ob.close()
        consumer.stop()
