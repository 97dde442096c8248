"""``replay``: the recorder's outputs from a scripted agent, and the real agent over real footage."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.agent.pipeline import StepResult
from edge.config import parse_config
from edge.config.site import SiteConfig
from edge.errors import CaptureError, ConfigError
from edge.rules import CameraAnalytics
from edge.tools.replay import ProgressBar, ReplayOptions, replay, replay_config
from edge.types import Detections, Frame, SourceStatus, Tracks

W, H, FPS, N = 320, 240, 10.0, 60


def _write_clip(path: Path) -> None:
    """A white 30x40 box moving left to right across a dark street, 6 s at 10 fps."""
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    assert wr.isOpened()
    for i in range(N):
        img = np.full((H, W, 3), 30, np.uint8)
        x = 10 + i * 4
        img[150:190, x : x + 30] = 255
        wr.write(img)
    wr.release()


def _site(tmp_path: Path, source: str, **cam: Any) -> SiteConfig:
    data = {
        "config_version": 1,
        "device_id": "pole-1",
        "site_id": "test",
        "cameras": [
            {
                "id": "cam0",
                "source": source,
                "model": "motion",
                "detect_fps": 10,
                "zones": [
                    {"id": "left", "kind": "count", "polygon": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]]},
                    {"id": "right", "kind": "count", "polygon": [[0.5, 0.5], [1, 0.5], [1, 1], [0.5, 1]]},
                ],
                **cam,
            }
        ],
        "uplink": {"outbox_path": str(tmp_path / "should-not-be-used.sqlite")},
        # Membership without inertia, so the rules' counts follow the box frame by frame.
        "rules": {"membership": {"enter_s": 0, "exit_s": 0, "hold_unseen_s": 0, "edge_margin": 0}},
    }
    return parse_config(data)


class ScriptedAgent:
    """Stands in for ``edge.agent.runner.Agent``: real frames from ``edge.capture``, tracks from a
    threshold, the real rules (``CameraAnalytics``) holding the zone states replay reads."""

    def __init__(
        self, cfg: SiteConfig, *, on_event: Callable[[dict[str, Any]], None], on_step: Callable[[Any], None]
    ):
        self.cfg, self.on_event, self.on_step = cfg, on_event, on_step

    def run(self) -> int:
        from edge.capture import open_source

        cam = self.cfg.cameras[0]
        assert cam.playback == "video_time" and not cam.loop
        assert self.cfg.uplink.mqtt is None and self.cfg.uplink.outbox_path.endswith("/uplink/outbox.sqlite")
        src = open_source(cam)
        analytics = CameraAnalytics(cam, self.cfg.rules, self.cfg.timezone)
        try:
            n = 0
            while True:
                item = src.read(timeout_s=2.0)
                if item is None or isinstance(item, SourceStatus):
                    if item is None or item.state.value == "ended":
                        break
                    continue
                assert isinstance(item, Frame)
                ys, xs = np.nonzero(item.image[:, :, 0] > 200)
                if xs.size:
                    box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]
                    tracks = Tracks(
                        xyxy=np.array(box, np.float32),
                        confidence=np.ones(1, np.float32),
                        class_id=np.array([0], np.int32),
                        track_id=np.array([7], np.int64),
                        first_t=np.zeros(1),
                        velocity=np.zeros((1, 2), np.float32),
                        speed_mps=np.full(1, np.nan, np.float32),
                        stationary=np.zeros(1, bool),
                        stationary_s=np.zeros(1, np.float32),
                    )
                else:
                    tracks = Tracks.empty()
                analytics.update(item, tracks)
                if n == 20:
                    self.on_event(
                        {
                            "kind": "zone_entry",
                            "phase": "start",
                            "camera_id": cam.id,
                            "zone_id": "right",
                            "track_id": 7,
                        }
                    )
                if n % 25 == 0:
                    self.on_event(
                        {"kind": "features", "phase": "instant", "camera_id": cam.id, "payload": {"n": n}}
                    )
                self.on_step(
                    StepResult(
                        frame=item,
                        detections=Detections.empty(),
                        tracks=tracks,
                        drafts=[],
                        inferred=True,
                        motion_energy={},
                        analytics=analytics,
                    )
                )
                n += 1
        finally:
            src.close()
        return 0


def test_replay_writes_all_outputs(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    cfg = _site(tmp_path, "/nonexistent-camera.mp4")
    out = tmp_path / "out"
    summary = replay(
        cfg, ReplayOptions(source=str(clip), out_dir=out, progress=False), agent_factory=ScriptedAgent
    )

    assert summary["frames"] == N
    assert summary["video_s"] == pytest.approx((N - 1) / FPS, abs=0.11)
    assert summary["events_by_kind"] == {"features": 3, "zone_entry": 1}
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    feats = [json.loads(x) for x in (out / "features.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["zone_entry"] and len(feats) == 3

    video = Path(next(f for f in summary["files"] if "annotated" in f))
    cap = cv2.VideoCapture(str(video))
    frames = 0
    first = None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        first = img if first is None else first
        frames += 1
    cap.release()
    assert frames == N
    assert first is not None and first.shape == (H, W, 3)
    # The annotation is on the video: the "left" count zone is tinted green-ish, not the raw 30-grey.
    px = first[int(0.6 * H), int(0.3 * W)].astype(int)  # above the HUD, clear of the box
    assert px[1] > px[0] + 20

    heat = cv2.imread(str(out / "heatmap.png"))
    assert heat is not None and heat.shape[0] == H and heat.shape[1] > W
    # The box's anchor ran along y=190: that band is coloured, the top of the frame is not.
    band = heat[185:200, 20 : W - 20].astype(int)
    top = heat[20:60, 20 : W - 20].astype(int)
    assert (band.max(axis=2) - band.min(axis=2)).mean() > 40
    assert (top.max(axis=2) - top.min(axis=2)).mean() < 10

    snap = cv2.imread(str(out / "snapshot.png"))
    assert snap is not None and snap.shape == (H, W, 3)
    plot = cv2.imread(str(out / "timeseries.png"))
    assert plot is not None and plot.shape[1] >= 900
    summary_file = json.loads((out / "summary.json").read_text())
    assert summary_file["frames"] == N


def test_replay_zone_counts_follow_the_object(tmp_path: Path) -> None:
    from edge.tools.replay import ReplayRecorder

    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    cfg = _site(tmp_path, str(clip))
    rec = ReplayRecorder(cfg.cameras[0], tmp_path / "o", video=False)
    ScriptedAgent(
        replay_config(cfg, ReplayOptions(source=str(clip)), tmp_path / "o"),
        on_event=rec.on_event,
        on_step=rec.on_step,
    ).run()
    rec.close()
    _, left = rec.series.series("count", "left")
    _, right = rec.series.series("count", "right")
    # Anchor x = 10 + 4i + 15: in "left" (x < 160) for i <= 33, then in "right".
    assert list(left[:34]) == [1] * 34 and list(left[35:]) == [0] * (N - 35)
    assert list(right[:33]) == [0] * 33 and list(right[35:]) == [1] * (N - 35)
    assert (tmp_path / "o" / "frames" / "frame_000000.jpg").exists()  # --no-video writes JPEG frames


def test_replay_config_overrides(tmp_path: Path) -> None:
    img = tmp_path / "still.png"
    cv2.imwrite(str(img), np.zeros((50, 50, 3), np.uint8))
    cfg = _site(tmp_path, "rtsp://cam.local/stream", loop=True)
    new = replay_config(cfg, ReplayOptions(source=str(img), hold_s=30), tmp_path)
    cam = new.cameras[0]
    assert (cam.source, cam.hold_s, cam.loop, cam.playback) == (str(img), 30.0, False, "video_time")
    assert new.uplink.mqtt is None and new.uplink.outbox_path == str(tmp_path / "uplink" / "outbox.sqlite")
    with pytest.raises(ConfigError):
        replay_config(cfg, ReplayOptions(source=str(img), camera_id="nope"), tmp_path)
    with pytest.raises(CaptureError, match="no such file"):
        replay_config(cfg, ReplayOptions(source=str(tmp_path / "missing.mp4")), tmp_path)


def test_progress_bar_renders_fraction() -> None:
    now = [0.0]
    buf = io.StringIO()
    bar = ProgressBar(100.0, stream=buf, clock=lambda: now[0], tty=True)
    for i in range(50):
        now[0] = i * 0.1
        bar.update(i * 1.0)
    text = bar.render(5.0)
    assert "49%" in text and "49.0/100.0 s video" in text and "10.0 fps" in text
    bar.close()
    assert buf.getvalue().endswith("\n") and "\r[" in buf.getvalue()


def test_progress_bar_with_another_unit_and_no_rate() -> None:
    """bench's bar counts planned seconds of a step, not video, and shows no frame rate."""
    buf = io.StringIO()
    bar = ProgressBar(20.0, stream=buf, clock=lambda: 2.0, tty=False, label="step", unit="s", rate=False)
    bar.update(5.0, frames=40)
    text = bar.render(2.0)
    assert text == f"step [{'#' * 7:<30}]  25%     5.0/20.0 s", text
    assert "fps" not in buf.getvalue() and "video" not in buf.getvalue()


def test_progress_bar_in_a_log_writes_one_line_per_tenth() -> None:
    buf = io.StringIO()
    bar = ProgressBar(100.0, stream=buf, clock=lambda: 1.0, tty=False)
    for i in range(100):
        bar.update(float(i))
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in buf.getvalue()
    assert " 90%" in lines[-2] and " 99%" in lines[-1]


# ---------------------------------------------------------------- the real agent, real footage, default model

CLIP = "media/intel_one-by-one-person-detection.mp4"


@pytest.mark.assets
@pytest.mark.slow
def test_replay_real_agent_on_real_footage(tmp_path: Path, assets: Path) -> None:
    from tests.fixtures.assets import require_asset

    pytest.importorskip("edge.agent.runner")
    clip = require_asset(CLIP)
    cfg = parse_config(
        {
            "config_version": 1,
            "device_id": "pole-1",
            "site_id": "test",
            "cameras": [
                {
                    "id": "hall",
                    "source": "0",
                    "model": "yolox_nano_416",
                    "detect_fps": 5,
                    "zones": [
                        {
                            "id": "door",
                            "kind": "count",
                            "polygon": [[0.0, 0.3], [0.35, 0.3], [0.35, 1.0], [0.0, 1.0]],
                        },
                        {
                            "id": "middle",
                            "kind": "crowd",
                            "area_m2": 20,
                            "polygon": [[0.35, 0.3], [0.7, 0.3], [0.7, 1.0], [0.35, 1.0]],
                        },
                        {
                            "id": "far",
                            "kind": "count",
                            "polygon": [[0.7, 0.3], [1.0, 0.3], [1.0, 1.0], [0.7, 1.0]],
                        },
                    ],
                }
            ],
            "uplink": {"outbox_path": str(tmp_path / "unused.sqlite")},
        }
    )
    out = tmp_path / "out"
    summary = replay(cfg, ReplayOptions(source=str(clip), out_dir=out, progress=False))
    assert summary["drawing_errors"] == 0
    assert summary["frames"] >= 600  # 139 s of video at 5 fps
    assert summary["video_s"] > 130
    for name in ("events.jsonl", "features.jsonl", "heatmap.png", "timeseries.png", "snapshot.png"):
        assert (out / name).stat().st_size > 0, name
    video = next(f for f in summary["files"] if "annotated" in f)
    cap = cv2.VideoCapture(video)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]
    cap.release()
    # The crowd zone's rule ran inside the real agent and its events reached events.jsonl.
    kinds = [json.loads(x)["kind"] for x in (out / "events.jsonl").read_text().splitlines()]
    assert "crowd_density" in kinds and summary["events_by_kind"]["crowd_density"] == kinds.count(
        "crowd_density"
    )
    # People walk in one by one: the model's tracks were counted in the zones they cross.
    peak = summary["zone_max"]["count"]
    assert set(peak) == {"door", "middle", "far"}
    assert sum(peak.values()) >= 2, peak
    assert summary["zone_max"]["density"]["middle"] > 0
    heat = cv2.imread(str(out / "heatmap.png"))
    assert heat is not None and heat.shape[0] == 432


def test_cli_replay_prints_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    import edge.tools.replay
    from edge.cli import main

    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    cfg_path = tmp_path / "site.yaml"
    cfg_path.write_text(yaml.safe_dump(_site(tmp_path, "/dev/video0").model_dump(mode="json")))
    monkeypatch.setattr(edge.tools.replay, "Agent", ScriptedAgent)
    out = tmp_path / "cli-out"
    code = main(["replay", "--config", str(cfg_path), "--source", str(clip), "--out", str(out), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert f"replayed {N} frames" in text and "zone_entry=1" in text
    assert str(out / "heatmap.png") in text
    assert main(["replay", "--config", str(cfg_path), "--source", str(tmp_path / "nope.mp4"), "--quiet"]) == 1


def test_replay_of_a_still_image_holds_it_for_hold_seconds(tmp_path: Path) -> None:
    img = np.full((H, W, 3), 30, np.uint8)
    img[150:190, 200:230] = 255  # one object standing in the "right" zone
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), img)
    cfg = _site(tmp_path, "/dev/video0")
    out = tmp_path / "out"
    summary = replay(
        cfg,
        ReplayOptions(source=str(still), out_dir=out, hold_s=3.0, progress=False),
        agent_factory=ScriptedAgent,
    )
    assert summary["video_s"] == pytest.approx(3.0, abs=0.25)
    assert 25 <= summary["frames"] <= 31  # 10 detect_fps x 3 s
    assert summary["zone_max"]["count"] == {"left": 0.0, "right": 1.0}
