"""Unit tests of the rule helpers: severity, livery, redaction, commands, features, masks, evidence."""

from __future__ import annotations

import numpy as np
import pytest

from edge.classes import BICYCLE, CAR, PERSON
from edge.config.rules import OperatorConfig, RulesConfig
from edge.config.site import CameraConfig, EvidenceConfig
from edge.config.zones import ZoneConfig
from edge.errors import CommandError
from edge.rules import CameraAnalytics
from edge.rules.context import fmt_duration
from edge.rules.crowd import LOS_TABLES, level_of_service
from edge.rules.livery import ColourLivery, bgr_to_hsv
from edge.rules.parking import grade
from edge.rules.redact import redacted_crop
from edge.types import Tracks

ZONE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]


def tracks(rows: list[tuple[int, int, list[float], float]]) -> Tracks:
    """rows of (track_id, class_id, xyxy, stationary_s)."""
    n = len(rows)
    st = np.array([r[3] for r in rows], np.float32)
    return Tracks(
        xyxy=np.array([r[2] for r in rows], np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.array([r[1] for r in rows], np.int32),
        track_id=np.array([r[0] for r in rows], np.int64),
        first_t=np.zeros(n),
        velocity=np.zeros((n, 2), np.float32),
        speed_mps=np.full(n, np.nan, np.float32),
        stationary=st > 0,
        stationary_s=st,
    )


@pytest.mark.parametrize(
    ("zone", "dwell", "sched", "severity", "reason"),
    [
        (
            {"zone_type": "time_limited"},
            310,
            False,
            "info",
            "parked 5 min in time-limited zone, 10 s over the 5 min limit",
        ),
        (
            {"zone_type": "no_parking"},
            400,
            False,
            "minor",
            "parked 7 min in no-parking zone, 100 s over the 5 min limit",
        ),
        ({"zone_type": "no_parking"}, 300 + 700, False, "major", "12 min over the 5 min limit"),
        ({"zone_type": "loading_bay"}, 300 + 1300, False, "critical", "loading bay"),
        (
            {"zone_type": "no_stopping", "schedule": {"windows": [{"start": "07:00", "end": "09:00"}]}},
            840,
            True,
            "critical",
            "parked 14 min in no-stopping zone, 9 min over the 5 min limit, schedule in force",
        ),
        (
            {"zone_type": "no_stopping"},
            840,
            True,
            "major",
            "parked 14 min in no-stopping zone, 9 min over the 5 min limit",
        ),
    ],
)
def test_severity_grading_with_reason(
    zone: dict, dwell: float, sched: bool, severity: str, reason: str
) -> None:
    z = ZoneConfig.model_validate({"id": "z", "kind": "no_parking", "polygon": ZONE, **zone})
    sev, why = grade(dwell, 300.0, z, sched, 600.0)
    assert sev == severity and reason in why


@pytest.mark.parametrize(
    ("s", "text"), [(45, "45 s"), (119.6, "120 s"), (840, "14 min"), (7500, "2 h 05 min")]
)
def test_fmt_duration(s: float, text: str) -> None:
    assert fmt_duration(s) == text


@pytest.mark.parametrize(
    ("table", "density", "los"),
    [
        ("walkway", 0.1, "A"),
        ("walkway", 0.4, "B"),
        ("walkway", 0.6, "C"),
        ("walkway", 1.0, "D"),
        ("walkway", 1.5, "E"),
        ("walkway", 2.5, "F"),
        ("queuing", 0.5, "A"),
        ("queuing", 1.2, "C"),
        ("queuing", 4.0, "E"),
        ("queuing", 6.0, "F"),
    ],
)
def test_fruin_level_of_service(table: str, density: float, los: str) -> None:
    assert level_of_service(density, LOS_TABLES[table]) == los


def test_hsv_matches_known_colours() -> None:
    px = np.array([[[0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255], [128, 128, 128]]], np.uint8)
    h, s, v = bgr_to_hsv(px)
    np.testing.assert_allclose(h[0, :4], [0, 120, 240, 60], atol=0.5)
    assert s[0, 4] == 0 and v[0, 0] == 1.0


@pytest.mark.parametrize(
    ("bgr", "operator"),
    [
        ((0, 220, 255), "yellow"),
        ((230, 120, 20), "blue"),
        ((40, 180, 30), "green"),
        ((128, 128, 128), None),
        ((20, 20, 20), None),
        ((0, 0, 230), "red"),
    ],
)
def test_livery_dominant_colour(bgr: tuple[int, int, int], operator: str | None) -> None:
    ops = [*RulesConfig().bike.operators, OperatorConfig(name="red", hue_deg=(345.0, 15.0))]
    crop = np.full((60, 40, 3), 90, np.uint8)  # grey frame and wheels...
    crop[10:40, 5:35] = bgr  # ...with a livery panel covering ~40 %
    assert ColourLivery(ops, min_fraction=0.12).classify(crop).operator == operator


def test_redaction_pixelates_people_only() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    car = np.array([50, 50, 250, 150], float)
    person = np.array([[200, 20, 240, 120]], float)  # overlaps the car's crop on its right
    crop = redacted_crop(img, car, person, margin=0.0, block_px=10)
    assert crop.shape == (100, 200, 3)
    np.testing.assert_array_equal(crop[:, :140], img[50:150, 50:190])  # untouched left of the person
    region = crop[:70, 150:190].astype(float)
    assert region.std(axis=(0, 1)).mean() < img.std() * 0.7  # pixelated (block averages)
    assert not np.array_equal(crop[:70, 150:190], img[50:120, 200:240])


def analytics(zones: list[dict], **kw: object) -> CameraAnalytics:
    cam = CameraConfig.model_validate({"id": "cam0", "source": "x.mp4", "zones": zones, **kw})
    return CameraAnalytics(
        cam, RulesConfig.model_validate({"membership": {"enter_s": 0}, "parking": {"grace_s": 10}}), "UTC"
    )


def test_commands_reject_bad_input() -> None:
    an = analytics([{"id": "bay", "kind": "bike_bay", "capacity": 1, "polygon": ZONE}])
    with pytest.raises(CommandError, match="unknown analytics command"):
        an.command("reboot", {}, 0.0, 0.0)
    with pytest.raises(CommandError, match="needs a string 'task_id'"):
        an.command("ack_task", {"task": 1}, 0.0, 0.0)
    with pytest.raises(CommandError, match="unknown argument"):
        an.command("ack_task", {"task_id": "x", "extra": 1}, 0.0, 0.0)
    with pytest.raises(CommandError, match="unknown task_id 'nope'"):
        an.command("resolve_task", {"task_id": "nope"}, 0.0, 0.0)


def test_masks_hide_tracks_and_evidence_is_redacted() -> None:
    saved: list[tuple[np.ndarray, str]] = []

    class Sink:
        def save(self, crop_bgr: np.ndarray, key: str, ts: float) -> str | None:
            saved.append((crop_bgr, key))
            return f"{len(saved)}.jpg"

    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "x.mp4",
            "zones": [{"id": "np", "kind": "no_parking", "polygon": ZONE}],
            "masks": [[[0.5, 0.5], [0.9, 0.5], [0.9, 0.9], [0.5, 0.9]]],
        }
    )
    rules = RulesConfig.model_validate({"membership": {"enter_s": 0}, "parking": {"grace_s": 10}})
    an = CameraAnalytics(cam, rules, "UTC", evidence=Sink())
    img = np.full((100, 100, 3), 200, np.uint8)
    img[30:50, 20:30] = 10  # a "person": a fine checkerboard that pixelation must wash out
    img[30:50:2, 20:30:2] = 250
    img[31:50:2, 21:30:2] = 250
    out = []
    for i in range(30):
        trk = tracks(
            [(1, CAR, [15, 20, 45, 50], i), (2, CAR, [60, 60, 80, 80], i), (3, PERSON, [20, 30, 30, 50], 0)]
        )
        out += an.update_at(float(i), 1e9 + i, trk, (100, 100), img)
    starts = [t for t in out if t.kind == "parking_violation" and t.phase == "start"]
    assert [t.track_id for t in starts] == [1], "the car in the masked corner is ignored"
    assert starts[0].payload["evidence"] == "1.jpg"
    crop, key = saved[0]
    assert key == starts[0].key
    assert not ((crop == 10) | (crop == 250)).any(), "the person is pixelated in the evidence crop"


def test_features_record_grid_counts_dwell_and_interval() -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "x.mp4",
            "zones": [
                {"id": "bay", "kind": "bike_bay", "capacity": 4, "polygon": ZONE},
                {"id": "plaza", "kind": "crowd", "polygon": ZONE},
            ],
            "calibration": {
                "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "ground_points_m": [[0, 0], [20, 0], [20, 10], [0, 10]],
            },
        }
    )
    rules = RulesConfig.model_validate(
        {"feature_interval_s": 10, "membership": {"enter_s": 0}, "features": {"grid": [4, 2]}}
    )
    an = CameraAnalytics(cam, rules, "UTC")
    recs = []
    for i in range(21):
        t = i * 1.0
        trk = tracks(
            [
                (1, BICYCLE, [20, 30, 30, 40], 0),
                (2, BICYCLE, [40, 30, 50, 40], 0),
                (3, PERSON, [70, 60, 80, 80], 0),
            ]
        )
        an.update_at(t, 1e9 + t, trk, (100, 100), None, {"plaza": 0.25})
        r = an.feature_record(t, 1e9 + t)
        if r is not None:
            recs.append(r)
    assert [r.t for r in recs] == [10.0, 20.0]
    p = recs[0].payload
    assert p["interval_s"] == 10.0
    bay = p["zones"]["bay"]
    assert bay["count"] == {"bicycle": 2} and bay["occupancy"] == pytest.approx(0.5)
    assert bay["dwell_max_s"] == pytest.approx(10.0) and bay["in"] == 2 and bay["out"] == 0
    plaza = p["zones"]["plaza"]
    assert plaza["count"] == {"person": 1}
    assert plaza["density"] == pytest.approx(
        1 / 128.0, abs=5e-4
    )  # 80 % of 20 m x 10 m (inner zone 0.8 x 0.8)
    assert plaza["los"] == "A" and plaza["motion_energy"] == pytest.approx(0.25)
    # 10 person-seconds in the cell of the person's anchor (x=75 -> col 3, y=80 -> row 1).
    assert p["grid"]["cells"] == [[0, 0, 0, 0], [0, 0, 0, 10]]
    assert recs[1].payload["zones"]["bay"]["in"] == 0
    assert an.occupancy_grid.sum() == 0  # reset after each record
    st = an.zone_states()
    assert st["bay"]["count"] == 2 and st["plaza"]["los"] == "A"


def test_evidence_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cv2 = pytest.importorskip("cv2")
    from edge.agent.evidence import build_evidence_sink

    assert build_evidence_sink(EvidenceConfig()) is None, "off by default"
    sink = build_evidence_sink(EvidenceConfig(enabled=True, path=str(tmp_path)))
    assert sink is not None
    name = sink.save(np.full((40, 60, 3), 77, np.uint8), "parking_violation:cam0:np:1:17", 0.0)
    assert name is not None and "/" not in name
    img = cv2.imread(str(tmp_path / name))
    assert img.shape == (40, 60, 3) and abs(int(img.mean()) - 77) <= 2


def test_tracker_and_rules_share_the_camera_ground_plane_from_the_start() -> None:
    from edge.tracking import ByteTracker
    from edge.types import Detections, Frame
    from edge.zones import ground_plane

    cam = CameraConfig.model_validate(
        {
            "id": "cam0",
            "source": "x.mp4",
            "zones": [{"id": "plaza", "kind": "crowd", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}],
            "calibration": {
                "image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                "ground_points_m": [[0, 0], [10, 0], [10, 10], [0, 10]],
            },
        }
    )
    ground = ground_plane(cam.calibration)
    an = CameraAnalytics(cam, RulesConfig(), "UTC", ground=ground)
    tracker = ByteTracker(RulesConfig().tracker, ground=ground)
    assert an.crowd.zones[0].area_m2 == pytest.approx(100.0)  # known before any frame
    img = np.zeros((100, 100, 3), np.uint8)  # 0.1 m per pixel
    for i in range(20):
        t = i * 0.1
        x = 10 + 20 * t  # 20 px/s = 2 m/s
        frame = Frame(image=img, seq=i, t=t, ts=1e9 + t, camera_id="cam0")
        trk = tracker.update(Detections.from_arrays([[x, 10, x + 10, 30]], [0.9], [PERSON]), t, (100, 100))
        an.update(frame, trk)
    assert trk.speed_mps[0] == pytest.approx(2.0, rel=0.1)


def test_non_canonical_class_ids_never_crash_the_step() -> None:
    an = analytics([{"id": "np", "kind": "no_parking", "polygon": ZONE}])
    trk = tracks([(1, 99, [10, 10, 30, 40], 5.0), (2, CAR, [40, 40, 60, 70], 5.0)])
    assert an.update_at(0.0, 1e9, trk, (100, 100)) == []
    assert an.zone_states()["np"]["count"] == 1  # the car; the unknown class is ignored


def test_occupancy_grid_window_resets_total_keeps_and_gaps_are_capped() -> None:
    """One grid implementation: the window goes into each features record, the total feeds replay."""
    cam = CameraConfig.model_validate({"id": "cam0", "source": "x.mp4"})
    rules = RulesConfig.model_validate({"feature_interval_s": 2, "features": {"grid": [4, 2]}})
    an = CameraAnalytics(cam, rules, "UTC")
    person = tracks([(3, PERSON, [70, 60, 80, 80], 0)])  # anchor (75, 80) -> col 3, row 1
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):
        an.update_at(t, 1e9 + t, person, (100, 100))
    rec = an.feature_record(2.0, 1e9 + 2.0)
    assert rec is not None and rec.payload["grid"]["cells"] == [[0, 0, 0, 0], [0, 0, 0, 2]]
    an.update_at(100.0, 1e9 + 100.0, person, (100, 100))  # a stalled camera: the gap counts at most 2 s
    assert an.occupancy_grid.sum() == pytest.approx(2.0)
    assert an.occupancy_total[1, 3] == pytest.approx(4.0) and an.occupancy_total.sum() == pytest.approx(4.0)


def test_person_boxes_take_every_detection_no_track_covers() -> None:
    from edge.rules.redact import person_boxes

    tracked = np.array([[10, 10, 30, 60]], np.float32)
    detected = np.array([[11, 10, 31, 61], [70, 10, 90, 60]], np.float32)  # the same person, and one unconfirmed
    got = person_boxes(tracked, detected)
    assert got.tolist() == [[10, 10, 30, 60], [70, 10, 90, 60]]
    assert person_boxes(np.zeros((0, 4)), detected).shape == (2, 4)
    assert person_boxes(tracked, np.zeros((0, 4))).shape == (1, 4)
