"""``report.html``: one self-contained page per replay, every figure from the rules' own state."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config import parse_config
from edge.config.site import SiteConfig
from edge.tools import report
from edge.tools.replay import ReplayOptions, replay
from edge.tools.report import ReportEvent, density_formatter, describe_event, episodes
from tests.tools.test_replay import ScriptedAgent, _write_clip

H, W = 240, 320


def _site(tmp_path: Path) -> SiteConfig:
    return parse_config(
        {
            "config_version": 1,
            "device_id": "pole-1",
            "site_id": "test",
            "cameras": [
                {
                    "id": "cam0",
                    "source": "/dev/video0",
                    "model": "motion",
                    "detect_fps": 10,
                    "zones": [
                        {"id": "left", "kind": "count", "polygon": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]},
                        {
                            "id": "plaza",
                            "kind": "crowd",
                            "area_m2": 500,
                            "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]],
                        },
                    ],
                    "lines": [{"id": "gate", "a": [0.5, 0.0], "b": [0.5, 1.0]}],
                }
            ],
            "uplink": {"outbox_path": str(tmp_path / "unused.sqlite")},
            "rules": {"membership": {"enter_s": 0, "exit_s": 0, "hold_unseen_s": 0, "edge_margin": 0}},
        }
    )


class EventfulAgent(ScriptedAgent):
    """The scripted agent plus a parking violation episode (start at frame 10, end at 40), a crossing,
    and a surge left open at the end, stamped like the real emitter (``ts`` of the frame)."""

    def __init__(self, cfg: SiteConfig, *, on_event: Any, on_step: Any) -> None:
        self.frame_ts: list[float] = []

        def step(result: Any) -> None:
            n = len(self.frame_ts)
            self.frame_ts.append(result.frame.ts)
            script = {
                10: [
                    (
                        "parking_violation",
                        "start",
                        "left",
                        "major",
                        "parked 1 s in no-stopping zone",
                        "v1",
                        {"dwell_s": 1.0},
                    )
                ],
                25: [
                    (
                        "line_crossing",
                        "instant",
                        "gate",
                        "info",
                        "",
                        "c1",
                        {"line_id": "gate", "direction": "in", "class": "person"},
                    )
                ],
                40: [("parking_violation", "end", "left", "info", "vehicle left", "v1", {"dwell_s": 4.0})],
                50: [
                    ("crowd_surge", "start", "plaza", "critical", "density rose 0.4/m2 within 60 s", "s1", {})
                ],
            }
            for kind, phase, zone, sev, reason, inc, payload in script.get(n, []):
                iso = _iso(result.frame.ts)
                on_event(
                    {
                        "kind": kind,
                        "phase": phase,
                        "camera_id": "cam0",
                        "zone_id": zone,
                        "severity": sev,
                        "severity_reason": reason,
                        "incident_id": inc,
                        "event_id": f"{inc}-{phase}-{n}",
                        "ts": iso,
                        "payload": payload,
                    }
                )
            on_step(result)

        super().__init__(cfg, on_event=on_event, on_step=step)


def _iso(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def replayed(tmp_path: Path) -> Path:
    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    out = tmp_path / "out"
    replay(
        _site(tmp_path),
        ReplayOptions(source=str(clip), out_dir=out, progress=False),
        agent_factory=EventfulAgent,
    )
    return out


def _images(page: str) -> list[np.ndarray]:
    out = []
    for mime, b64 in re.findall(r'src="data:(image/(?:png|jpeg));base64,([A-Za-z0-9+/=]+)"', page):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, mime
        out.append(img)
    return out


def test_report_is_one_self_contained_page(replayed: Path) -> None:
    page = (replayed / "report.html").read_text()
    assert "<h1>Replay report: camera cam0</h1>" in page
    # Nothing fetched from anywhere: every picture is inline, no scripts, no links to other files.
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<script" not in page
    images = _images(page)
    assert len(images) >= 4  # the time chart, the heat map and key frames
    assert all(img.std() > 5 for img in images)  # pictures with content, not blank
    for section in (
        "In short",
        "Zones",
        "Over time",
        "Events",
        "Where people and objects stood",
        "Key moments",
        "How to read this page",
    ):
        assert f"<h2>{section}</h2>" in page


def test_report_shows_how_fast_each_loop_closed(replayed: Path) -> None:
    """The kerb zone's violations and their dwell, from the same figures as ``edge-agent report``."""
    page = (replayed / "report.html").read_text(encoding="utf-8")
    assert "How fast each loop closed" in page
    row = page[page.index("<th>kerb zone</th>"):]
    assert "<td>left</td><td>1</td><td>0</td><td>4 s / 4 s</td>" in row, row[:400]


def test_report_lists_events_in_words_at_video_time(replayed: Path) -> None:
    page = (replayed / "report.html").read_text()
    rows = re.findall(
        r"<tr><td>(\d+:\d+\.\d)</td><td class='sev-(\w+)'>\w+</td><td>([\w-]*)</td><td>([^<]*)</td></tr>",
        page,
    )
    assert [(t, sev, zone) for t, sev, zone, _ in rows] == [
        ("0:01.0", "major", "left"),
        ("0:02.5", "info", "gate"),
        ("0:04.0", "info", "left"),
        ("0:05.0", "critical", "plaza"),
    ]
    assert rows[0][3] == "parking violation started: parked 1 s in no-stopping zone"
    assert rows[1][3] == "person crossed gate going in"
    assert "Line <b>gate</b>: 1 crossed in, 0 crossed out." in page
    assert "2 episode(s): crowd surge, parking violation; 2 of them major or critical." in page


def test_key_frames_are_the_event_moments_and_the_busiest(replayed: Path) -> None:
    page = (replayed / "report.html").read_text()
    captions = re.findall(r"<figcaption><b>(\d+:\d+\.\d)</b> — ([^<]*)</figcaption>", page)
    times = [t for t, _ in captions]
    assert "0:01.0" in times and "0:05.0" in times
    assert any(c.startswith("parking violation started in left") for _, c in captions)
    assert any(c.startswith("busiest moment: 1 counted") for _, c in captions)
    assert 3 <= len(captions) <= 6 and times == sorted(times)


def test_count_and_density_come_from_the_same_smoothed_state(tmp_path: Path) -> None:
    """The count chart's dashed line is the smoothed count the density is computed from, so the two
    panels agree: density = smoothed count / area at every sample."""
    from edge.tools.replay import ReplayRecorder, replay_config

    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    cfg = _site(tmp_path)
    rec = ReplayRecorder(cfg.cameras[0], tmp_path / "o", video=False, rules=cfg.rules)
    ScriptedAgent(
        replay_config(cfg, ReplayOptions(source=str(clip)), tmp_path / "o"),
        on_event=rec.on_event,
        on_step=rec.on_step,
    ).run()
    rec.close()
    ts, smoothed = rec.series.series("count_smoothed", "plaza")
    td, density = rec.series.series("density", "plaza")
    assert ts.size == td.size > 50 and np.array_equal(ts, td)
    assert np.allclose(density, smoothed / 500.0, rtol=1e-9, atol=0)  # not the 0.001-rounded payload value
    assert len(np.unique(density)) > 20  # a curve, not a staircase of 0.001 steps
    _, raw = rec.series.series("count", "plaza")
    assert raw.max() == 1 and smoothed.max() > 0.1
    data = rec.report_data()
    assert data.area_m2 == {"plaza": 500.0}
    assert data.los_bounds["plaza"][0] == pytest.approx(1 / 3.25)
    assert {lv for _, lv in data.los["plaza"]} == {"A"}


def test_report_without_matplotlib_still_has_every_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "matplotlib_available", lambda: False)
    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    out = tmp_path / "out"
    replay(
        _site(tmp_path),
        ReplayOptions(source=str(clip), out_dir=out, progress=False),
        agent_factory=EventfulAgent,
    )
    page = (out / "report.html").read_text()
    assert "pip install edge[report]" in page
    assert "parking violation started" in page and "<h2>Key moments</h2>" in page
    images = _images(page)
    assert len(images) >= 4
    assert any(img.shape[1] >= 900 for img in images)  # the cv2 time-series plot


def test_matplotlib_charts_are_drawn_when_installed(replayed: Path) -> None:
    pytest.importorskip("matplotlib")
    page = (replayed / "report.html").read_text()
    assert "counts, density and events over time" in page  # the matplotlib chart's alt text
    assert "pip install edge[report]" not in page


def test_density_ticks_stay_readable_at_a_thousandth() -> None:
    fmt = density_formatter(0.001)
    assert [fmt(v) for v in (0.0, 0.001, 0.002, 0.003)] == ["0.000", "0.001", "0.002", "0.003"]
    assert density_formatter(0.05)(0.1) == "0.10"
    assert density_formatter(1.0)(2.0) == "2"


def test_episodes_fold_phases_and_keep_open_ones() -> None:
    ev = [
        ReportEvent(1.0, "parking_violation", "start", "kerb", "major", "parked", "a"),
        ReportEvent(5.0, "parking_violation", "update", "kerb", "critical", "still", "a"),
        ReportEvent(9.0, "parking_violation", "end", "kerb", "info", "left", "a"),
        ReportEvent(7.0, "dispatch_task", "start", "bay", "major", "remove 3 bikes from bay", "t"),
        ReportEvent(
            3.0, "line_crossing", "instant", "gate", "info", "", "x", {"direction": "out", "line_id": "gate"}
        ),
        ReportEvent(4.0, "crowd_density", "instant", "plaza", "info", "", "y"),
    ]
    eps, instants = episodes(ev)
    assert [(e.kind, e.start, e.end, e.severity) for e in eps] == [
        ("parking_violation", 1.0, 9.0, "critical"),
        ("dispatch_task", 7.0, None, "major"),
    ]
    assert [e.kind for e in instants] == ["line_crossing"]  # periodic measurements are not events
    assert describe_event(ev[3]) == "dispatch task started: remove 3 bikes from bay"
