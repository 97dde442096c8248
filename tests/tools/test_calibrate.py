"""The calibration page: its JSON API, and the round trip in headless Chromium."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.config import load_config
from edge.errors import ConfigError
from edge.tools.calibrate import CalibrateServer, CalibrateState, check_ground_points

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


SITE_YAML = """\
# Test pole: a kerb camera. This comment must survive a save from the page.
config_version: 1
device_id: pole-1
site_id: test-site   # the site, as the city names it
cameras:
  - id: cam0
    source: {source}
    model: motion        # no model download in tests
    zones:
      # The school kerb, drawn on the first visit.
      - id: kerb
        kind: no_parking
        polygon: [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]]
# Rules left at their defaults.
"""
COMMENTS = (
    "# Test pole: a kerb camera. This comment must survive a save from the page.",
    "site_id: test-site   # the site, as the city names it",
    "    model: motion        # no model download in tests",
    "      # The school kerb, drawn on the first visit.",
    "# Rules left at their defaults.",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    img = np.full((432, 768, 3), (60, 90, 60), np.uint8)
    cv2.rectangle(img, (100, 300), (700, 400), (120, 120, 120), -1)
    cv2.imwrite(str(tmp_path / "street.png"), img)
    path = tmp_path / "site.yaml"
    path.write_text(SITE_YAML.format(source=tmp_path / "street.png"))
    return path


@pytest.fixture
def server(site: Path) -> Iterator[CalibrateServer]:
    srv = CalibrateServer(CalibrateState.load(site, timeout_s=5), port=0).start()
    yield srv
    srv.stop()


def _root(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}/"


def _token(url: str) -> str:
    """The session token the page carries (what the page's own JS sends back)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        page = r.read().decode()
    m = re.search(r'<meta name="edge-token" content="([^"]+)">', page)
    assert m, "the page carries no session token"
    return m.group(1)


def _get(url: str, token: str | None = "auto", headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    base = _root(url)
    h = dict(headers or {})
    if token == "auto":
        token = _token(base)
    if token:
        h["X-Edge-Token"] = token
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=h), timeout=30) as r:
            body = r.read()
            ctype = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if "json" in ctype else body, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def _post(
    url: str, body: Any, token: str | None = "auto", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    base = _root(url)
    h = {"Content-Type": "application/json", **(headers or {})}
    if token == "auto":
        token = _token(base)
    if token:
        h["X-Edge-Token"] = token
    req = urllib.request.Request(url, json.dumps(body).encode(), h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            ctype = r.headers.get("Content-Type", "")
            data = r.read()
            return r.status, json.loads(data) if "json" in ctype else data
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_binds_loopback_only(server: CalibrateServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


def test_config_api_lists_zones_and_zone_schema(server: CalibrateServer) -> None:
    status, data, _ = _get(server.url + "api/config")
    assert status == 200
    cam = data["cameras"][0]
    assert cam["id"] == "cam0" and cam["zones"][0]["id"] == "kerb"
    assert "no_parking" in data["zone_schema"]["properties"]["kind"]["enum"]
    assert data["backup"] is True


def test_snapshot_is_the_camera_frame(server: CalibrateServer, site: Path) -> None:
    status, body, headers = _get(server.url + "api/snapshot?camera=cam0")
    assert status == 200 and headers["X-Frame-Size"] == "768x432"
    assert "X-Snapshot-Error" not in headers
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    ref = cv2.imread(str(site.parent / "street.png"))
    assert img.shape == ref.shape
    assert float(np.abs(img.astype(int) - ref.astype(int)).mean()) < 3.0  # JPEG of the same picture


def test_snapshot_of_a_missing_camera_is_a_placeholder_with_the_reason(tmp_path: Path, site: Path) -> None:
    data = yaml.safe_load(site.read_text())
    data["cameras"][0]["source"] = str(tmp_path / "gone.mp4")
    site.write_text(yaml.safe_dump(data))
    srv = CalibrateServer(CalibrateState.load(site, timeout_s=2), port=0).start()
    try:
        status, _, headers = _get(srv.url + "api/snapshot?camera=cam0")
    finally:
        srv.stop()
    assert status == 200
    assert "cam0" in headers["X-Snapshot-Error"]


def test_save_writes_backup_and_validated_yaml(server: CalibrateServer, site: Path) -> None:
    before = site.read_text()
    zones = [
        {"id": "kerb", "kind": "no_parking", "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]]},
        {
            "id": "bay-1",
            "kind": "bike_bay",
            "capacity": 15,
            "schedule": {"windows": [{"days": ["mon", "fri"], "start": "07:00", "end": "19:00"}]},
            "polygon": [[0.123456, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]],
        },
    ]
    calib = {
        "image_points": [[0.1, 0.9], [0.9, 0.9], [0.8, 0.5], [0.2, 0.5]],
        "ground_points_m": [[0, 0], [20, 0], [18, 15], [2, 15]],
    }
    status, resp = _post(server.url + "api/save", {"camera": "cam0", "zones": zones, "calibration": calib})
    assert status == 200, resp
    assert resp["backup"] == str(site) + ".bak"
    assert Path(resp["backup"]).read_text() == before
    cfg = load_config(site)
    cam = cfg.cameras[0]
    assert [z.id for z in cam.zones] == ["kerb", "bay-1"]
    assert cam.zones[1].polygon[0] == (0.1235, 0.1)  # rounded to 4 decimals
    assert cam.zones[1].capacity == 15
    assert cam.zones[1].schedule is not None and cam.zones[1].schedule.windows[0].start == "07:00"
    assert cam.calibration is not None and cam.calibration.ground_points_m[1] == (20.0, 0.0)
    assert cam.source == str(site.parent / "street.png")  # other keys kept


def test_save_to_a_new_file_leaves_the_original(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "site-calibrated.yaml"
    before = site.read_text()
    srv = CalibrateServer(CalibrateState.load(site, out, timeout_s=2), port=0).start()
    try:
        zones = [{"id": "plaza", "kind": "crowd", "polygon": [[0.2, 0.2], [0.5, 0.2], [0.5, 0.5]]}]
        status, resp = _post(srv.url + "api/save", {"camera": "cam0", "zones": zones})
    finally:
        srv.stop()
    assert status == 200 and resp["backup"] is None
    assert site.read_text() == before and not (tmp_path / "site.yaml.bak").exists()
    assert [z.id for z in load_config(out).cameras[0].zones] == ["plaza"]


@pytest.mark.parametrize(
    ("zones", "needle"),
    [
        ([{"id": "z", "kind": "no_parking", "polygon": [[0.1, 0.1], [0.2, 0.2]]}], "at least 3 points"),
        ([{"id": "z", "kind": "parking_lot", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]}], "kind"),
        ([{"id": "z", "kind": "crowd", "polygon": [[0.1, 0.1], [1.2, 0.2], [0.3, 0.1]]}], "outside 0..1"),
        (
            [
                {"id": "z", "kind": "crowd", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]},
                {"id": "z", "kind": "count", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.1]]},
            ],
            "duplicate zone id",
        ),
    ],
)
def test_invalid_save_is_refused_and_file_untouched(
    server: CalibrateServer, site: Path, zones: list[dict[str, Any]], needle: str
) -> None:
    before = site.read_text()
    status, resp = _post(server.url + "api/save", {"camera": "cam0", "zones": zones})
    assert status == 400
    assert any(needle in p for p in resp["problems"]), resp
    assert site.read_text() == before
    assert not Path(str(site) + ".bak").exists()


def test_save_for_unknown_camera_is_refused(server: CalibrateServer) -> None:
    status, resp = _post(server.url + "api/save", {"camera": "nope", "zones": []})
    assert status == 400 and "nope" in resp["problems"][0]


def test_static_files_cannot_escape_the_static_dir(server: CalibrateServer) -> None:
    status, _, _ = _get(server.url + "static/../calibrate.py")
    assert status == 404
    status, body, _ = _get(server.url + "static/calibrate.js")
    assert status == 200 and b"function" in body


def _true_ground(img: list[list[float]], w: int = 800, h: int = 600) -> list[list[float]]:
    """Metres of image points under a known oblique homography (a camera looking down a street)."""
    m = np.array([[0.05, 0.01, -3.0], [0.002, 0.08, -20.0], [0.0001, 0.002, 1.0]])
    px = np.array(img) * [w, h]
    pts = np.c_[px, np.ones(len(px))] @ m.T
    return (pts[:, :2] / pts[:, 2:]).tolist()


IMG6 = [[0.1, 0.9], [0.9, 0.9], [0.8, 0.5], [0.2, 0.5], [0.5, 0.7], [0.35, 0.6]]


def test_ground_check_passes_consistent_points() -> None:
    r = check_ground_points(IMG6, _true_ground(IMG6), 800, 600)
    assert r["ok"] is True and r["suspect"] is None
    assert max(r["loo_errors_m"]) < 1e-3 and r["message"].startswith("OK")


@pytest.mark.parametrize("bad", range(6))
def test_ground_check_names_the_mistyped_point(bad: int) -> None:
    ground = _true_ground(IMG6)
    ground[bad] = [ground[bad][0] + 2.0, ground[bad][1]]  # one distance typed 2 m off
    r = check_ground_points(IMG6, ground, 800, 600)
    assert r["suspect"] == bad, r
    assert r["ok"] is False and r["message"].startswith(f"G{bad + 1} does not fit")
    assert r["loo_errors_m"][bad] == pytest.approx(2.0, abs=0.01)  # the others place it where it is
    # What the page shows: the culprit 2 m off, every other point on the fit of the points that agree.
    assert r["off_by_m"][bad] == pytest.approx(2.0, abs=0.01)
    assert max(e for i, e in enumerate(r["off_by_m"]) if i != bad) < 0.01


def test_ground_check_with_five_points_finds_the_error_but_asks_for_a_sixth() -> None:
    img5 = IMG6[:5]
    ground = _true_ground(img5)
    ground[1] = [ground[1][0], ground[1][1] + 1.0]
    r = check_ground_points(img5, ground, 800, 600)
    assert r["ok"] is False and r["suspect"] is None
    assert "click a sixth point" in r["message"]


def test_ground_check_needs_five_points_because_four_always_fit() -> None:
    img4 = IMG6[:4]
    wrong = _true_ground(img4)
    wrong[2] = [wrong[2][0] + 5.0, wrong[2][1]]
    # A plain fit of 4 points reports 0 m whatever was typed: that is why the check refuses it.
    from edge.geometry import Homography

    src = np.array(img4) * [800, 600]
    assert Homography.fit(src, np.array(wrong)).residuals_m(src, np.array(wrong)).max() < 1e-6
    with pytest.raises(ValueError, match=r"at least 5 are needed.*click 1 more"):
        check_ground_points(img4, wrong, 800, 600)
    with pytest.raises(ValueError, match="one metre pair per point"):
        check_ground_points(IMG6, _true_ground(IMG6)[:5], 800, 600)


def test_homography_api_returns_the_check(server: CalibrateServer) -> None:
    ground = _true_ground(IMG6, 768, 432)
    ground[4] = [ground[4][0], ground[4][1] + 1.5]
    status, r = _post(
        server.url + "api/homography", {"camera": "cam0", "image_points": IMG6, "ground_points_m": ground}
    )
    assert status == 200 and r["suspect"] == 4, r
    status, r = _post(
        server.url + "api/homography", {"camera": "cam0", "image_points": IMG6[:4], "ground_points_m": ground[:4]}
    )
    assert status == 400 and "at least 5" in r["error"]


# ---------------------------------------------------------------- who may write


def test_api_refuses_requests_without_the_page_token(server: CalibrateServer, site: Path) -> None:
    before = site.read_text()
    zones = [{"id": "evil", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    status, r = _post(server.url + "api/save", {"camera": "cam0", "zones": zones}, token=None)
    assert status == 403 and "token" in r["error"]
    status, r = _post(server.url + "api/save", {"camera": "cam0", "zones": zones}, token="guessed")
    assert status == 403
    status, r, _ = _get(server.url + "api/config", token=None)
    assert status == 403
    status, _, _ = _get(server.url + "api/snapshot?camera=cam0", token=None)
    assert status == 403  # the camera picture is not for other pages either
    assert site.read_text() == before and not Path(str(site) + ".bak").exists()


def test_api_refuses_other_origins_even_with_the_token(server: CalibrateServer, site: Path) -> None:
    before = site.read_text()
    zones = [{"id": "evil", "kind": "count", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    status, r = _post(
        server.url + "api/save", {"camera": "cam0", "zones": zones}, headers={"Origin": "https://evil.example"}
    )
    assert status == 403 and "evil.example" in r["error"]
    port = server.url.rsplit(":", 1)[1].strip("/")
    status, r = _post(
        server.url + "api/save", {"camera": "cam0", "zones": []}, headers={"Origin": f"http://localhost:{port}"}
    )
    assert status == 200, r  # the page itself, opened as localhost through a tunnel
    assert site.read_text() != before


def test_a_rebound_host_name_gets_nothing(server: CalibrateServer) -> None:
    """DNS rebinding: a hostile name resolving to 127.0.0.1 sends its own Host; page and API refuse it."""
    status, r, _ = _get(server.url, token=None, headers={"Host": "evil.example:8470"})
    assert status == 403 and "Host" in r["error"]
    status, r, _ = _get(server.url + "api/config", headers={"Host": "evil.example:8470"})
    assert status == 403


def test_save_needs_json(server: CalibrateServer) -> None:
    """A cross-site form post cannot send JSON with a custom header: a form-encoded body is refused."""
    req = urllib.request.Request(
        server.url + "api/save",
        b"camera=cam0",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Edge-Token": server.state.token},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 415


def test_save_keeps_the_yaml_comments(server: CalibrateServer, site: Path) -> None:
    zones = [
        {"id": "kerb", "kind": "no_parking", "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]]},
        {"id": "plaza", "kind": "crowd", "area_m2": 40, "polygon": [[0.2, 0.2], [0.5, 0.2], [0.5, 0.5]]},
    ]
    lines = [{"id": "gate", "a": [0.1, 0.5], "b": [0.9, 0.5], "classes": ["person"]}]
    status, r = _post(server.url + "api/save", {"camera": "cam0", "zones": zones, "lines": lines})
    assert status == 200 and r["comments_kept"] is True, r
    text = site.read_text()
    for comment in COMMENTS:
        assert comment in text.splitlines(), comment
    cam = load_config(site).cameras[0]
    assert [z.id for z in cam.zones] == ["kerb", "plaza"] and cam.lines[0].id == "gate"


def test_a_layout_it_cannot_edit_in_place_is_still_saved(tmp_path: Path) -> None:
    """A config written in flow style: saved plainly (valid, comments gone) and the page is told so."""
    p = tmp_path / "flow.yaml"
    p.write_text(
        "# flow style\nconfig_version: 1\ndevice_id: d\nsite_id: s\n"
        f"cameras: [{{id: cam0, source: {tmp_path / 'x.png'}, model: motion}}]\n"
    )
    srv = CalibrateServer(CalibrateState.load(p, timeout_s=2), port=0).start()
    try:
        zones = [{"id": "z", "kind": "count", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}]
        status, r = _post(srv.url + "api/save", {"camera": "cam0", "zones": zones})
    finally:
        srv.stop()
    assert status == 200 and r["comments_kept"] is False
    assert [z.id for z in load_config(p).cameras[0].zones] == ["z"]


def test_save_drops_fields_the_kind_does_not_use(server: CalibrateServer, site: Path) -> None:
    """A zone switched from bike bay to crowd on the page leaves no capacity or operator behind."""
    zones = [
        {"id": "kerb", "kind": "crowd", "capacity": 12, "operator": "hellobike", "area_m2": 30,
         "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]], "exclude": [[[0.4, 0.75], [0.5, 0.75], [0.5, 0.85]]]},
    ]
    status, r = _post(server.url + "api/save", {"camera": "cam0", "zones": zones})
    assert status == 200, r
    z = load_config(site).cameras[0].zones[0]
    assert (z.kind, z.capacity, z.operator, z.area_m2) == ("crowd", None, None, 30.0)
    assert z.exclude == [[(0.4, 0.75), (0.5, 0.75), (0.5, 0.85)]]


def test_save_keeps_a_no_parking_zones_lanes_and_drops_them_from_other_kinds(server: CalibrateServer, site: Path) -> None:
    """Traffic lanes are saved with a no-parking zone (rounded like every shape); a zone switched to another
    kind on the page leaves none behind (the config would refuse them)."""
    lane = [[0.412345, 0.72], [0.88, 0.72], [0.88, 0.8], [0.4, 0.8]]
    zones = [
        {"id": "kerb", "kind": "no_parking", "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]], "lanes": [lane]},
        {"id": "plaza", "kind": "crowd", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.4]], "lanes": [lane]},
    ]
    status, r = _post(server.url + "api/save", {"camera": "cam0", "zones": zones})
    assert status == 200, r
    kerb, plaza = load_config(site).cameras[0].zones
    assert kerb.lanes == [[(0.4123, 0.72), (0.88, 0.72), (0.88, 0.8), (0.4, 0.8)]]
    assert plaza.lanes == []
    status, data, _ = _get(server.url + "api/config")
    assert data["kind_shapes"] == {"no_parking": ["lanes"]}
    assert data["cameras"][0]["zones"][0]["lanes"] == kerb.lanes or data["cameras"][0]["zones"][0]["lanes"] == [
        [list(p) for p in kerb.lanes[0]]
    ]


def test_config_api_says_which_fields_each_kind_uses(server: CalibrateServer) -> None:
    status, data, _ = _get(server.url + "api/config")
    assert status == 200
    fields = data["kind_fields"]
    assert "capacity" in fields["bike_bay"] and "capacity" not in fields["crowd"]
    assert "operator" not in fields["crowd"] and "area_m2" in fields["crowd"]
    assert "limit_s" in fields["no_parking"] and "limit_s" not in fields["count"]
    assert all("schedule" in f for f in fields.values())
    assert "vehicle" in data["class_names"] and data["min_check_points"] == 5


# ---------------------------------------------------------------- a file source: position, live view


def _clip(path: Path, n: int = 50, fps: float = 10.0) -> Path:
    """A dark street; a white 'object' appears from frame 20 on, moving right."""
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 240))
    for i in range(n):
        img = np.full((240, 320, 3), 40, np.uint8)
        cv2.putText(img, f"{i:03d}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 255), 2)
        if i >= 20:
            img[150:200, 40 + 4 * i : 70 + 4 * i] = 255
        wr.write(img)
    wr.release()
    return path


def _file_site(tmp_path: Path, source: Path, model: str = "motion") -> Path:
    p = tmp_path / "file-site.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "config_version": 1, "device_id": "pole-1", "site_id": "t",
                "cameras": [{
                    "id": "cam0", "source": str(source), "model": model, "detect_fps": 10,
                    "calibration": {"image_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                                    "ground_points_m": [[0, 0], [8, 0], [8, 6], [0, 6]]},
                    "zones": [{"id": "road", "kind": "count", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
                }],
            }
        )
    )
    return p


def test_snapshot_of_a_file_follows_its_position(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "c.avi")
    srv = CalibrateServer(CalibrateState.load(_file_site(tmp_path, clip), timeout_s=5), port=0).start()
    try:
        status, data, _ = _get(srv.url + "api/config")
        cam = data["cameras"][0]
        assert cam["source_kind"] == "file" and cam["duration_s"] == pytest.approx(5.0, abs=0.01)
        status, body, headers = _get(srv.url + "api/snapshot?camera=cam0&at=3.0")
        assert status == 200 and headers["X-Position"] == "3.00"
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert img[175, 40 + 4 * 30 + 15].min() > 200  # frame 30: the object is there
        # Later pictures (no 'at') stay at that position, not frame 0.
        _, body, headers = _get(srv.url + "api/snapshot?camera=cam0")
        assert headers["X-Position"] == "3.00"
    finally:
        srv.stop()


def test_live_view_plays_the_file_on_with_tracks_and_counts(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "c.avi", n=80)
    srv = CalibrateServer(CalibrateState.load(_file_site(tmp_path, clip), timeout_s=5), port=0).start()
    try:
        token = _token(srv.url)
        _get(srv.url + "api/snapshot?camera=cam0&at=2.0", token=token)
        zones = [{"id": "road", "kind": "count", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}]
        positions = []
        frames = []
        stamps = []
        for _ in range(6):
            time.sleep(0.3)
            stamps.append(time.monotonic())
            req = urllib.request.Request(
                srv.url + "api/live", json.dumps({"camera": "cam0", "zones": zones, "lines": []}).encode(),
                {"Content-Type": "application/json", "X-Edge-Token": token},
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.headers["Content-Type"] == "image/jpeg"
                positions.append(float(r.headers["X-Position"]))
                frames.append(cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR))
    finally:
        srv.stop()
    assert positions[0] == pytest.approx(2.0, abs=0.05)  # from where the page was, not from 0
    assert all(b > a for a, b in itertools.pairwise(positions)), positions  # plays on in real time
    # In real time: the file moved on about as much as the wall clock between the polls.
    assert positions[-1] - positions[0] == pytest.approx(stamps[-1] - stamps[0], abs=0.35)
    last = frames[-1]
    assert last.shape == (240, 320, 3)
    # Drawn: the zone tinted by the annotator and the HUD panel at the bottom left (darkened).
    assert not np.array_equal(last[100:140, 100:300], np.full((40, 200, 3), 40, np.uint8))
    assert last[235, 5].max() < 40


def test_live_view_of_a_live_source_keeps_it_open_and_reads_the_latest_frame(tmp_path: Path) -> None:
    """A camera (here the synthetic street through its real sim:// frame source): opened once, polled,
    each answer a new annotated frame; no file position."""
    p = tmp_path / "sim.yaml"
    text = (Path(__file__).resolve().parents[2] / "configs" / "dev-sim.yaml").read_text()
    data = yaml.safe_load(text)
    data = {k: data[k] for k in ("config_version", "device_id", "site_id", "cameras", "rules") if k in data}
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    state = CalibrateState.load(p, timeout_s=10)
    srv = CalibrateServer(state, port=0).start()
    try:
        token = _token(srv.url)
        frames = []
        for _ in range(3):
            req = urllib.request.Request(
                srv.url + "api/live",
                json.dumps({"camera": "street", "zones": None, "lines": None}).encode(),
                {"Content-Type": "application/json", "X-Edge-Token": token},
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                assert "X-Position" not in r.headers
                frames.append(cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR))
        feed = state.feeds["street"]
        assert feed.kind == "live" and feed._source is not None  # one source, kept open between polls
        state.close_idle(idle_s=60)
        assert feed._source is not None  # just used: still open
        state.close_idle(idle_s=0)
        assert feed._source is None and "street" not in state.feeds  # idle: the camera is let go
    finally:
        srv.stop()
    assert frames[0].shape == (400, 640, 3)
    assert not np.array_equal(frames[0], frames[-1])  # the street moves on


def test_live_view_of_a_camera_that_is_gone_is_an_error_not_a_hang(tmp_path: Path) -> None:
    p = _file_site(tmp_path, tmp_path / "missing.avi")
    srv = CalibrateServer(CalibrateState.load(p, timeout_s=2), port=0).start()
    try:
        status, r = _post(srv.url + "api/live", {"camera": "cam0", "zones": None, "lines": None})
    finally:
        srv.stop()
    assert status == 503 and "missing.avi" in r["error"]


@pytest.mark.assets
@pytest.mark.slow
def test_detection_preview_uses_the_files_current_position(tmp_path: Path, assets: Path) -> None:
    """The person clip's first frame is an empty room; at 30 s someone stands at the table."""
    from tests.fixtures.assets import require_asset

    clip = require_asset("media/intel_one-by-one-person-detection.mp4")
    require_asset("models/yolox_nano_416.onnx")
    srv = CalibrateServer(CalibrateState.load(_file_site(tmp_path, clip, "yolox_nano_416"), timeout_s=10), port=0).start()
    try:
        token = _token(srv.url)
        _get(srv.url + "api/snapshot?camera=cam0&at=0", token=token)
        status, at0, _ = _get(srv.url + "api/detect?camera=cam0", token=token)
        assert status == 200 and at0["position_s"] == 0.0
        _get(srv.url + "api/snapshot?camera=cam0&at=30", token=token)
        status, at30, _ = _get(srv.url + "api/detect?camera=cam0", token=token)
    finally:
        srv.stop()
    assert [d for d in at0["detections"] if d["class"] == "person"] == []
    assert at30["position_s"] == pytest.approx(30.0, abs=0.2)
    people = [d for d in at30["detections"] if d["class"] == "person"]
    assert len(people) == 1 and people[0]["confidence"] > 0.5, at30


def test_load_refuses_an_invalid_config(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("config_version: 1\ndevice_id: x\n")
    with pytest.raises(ConfigError):
        CalibrateState.load(p)


# ---------------------------------------------------------------- headless Chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium for the browser test")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver (Debian packages) are not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="edge-calib-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(browser: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot in the test's folder (and in $EDGE_SCREENSHOTS, to look at after a run)."""
    import os

    out = tmp_path / f"{name}.png"
    browser.save_screenshot(str(out))
    keep = os.environ.get("EDGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / out.name)
    assert out.stat().st_size > 10_000
    return out


class _Page:
    """Clicks on the canvas in picture fractions (selenium 4 offsets are from the element's centre)."""

    def __init__(self, browser: Any) -> None:
        from selenium.webdriver.common.by import By

        self.b = browser
        self.canvas = browser.find_element(By.ID, "canvas")
        self.w, self.h = self.canvas.size["width"], self.canvas.size["height"]

    def at(self, fx: float, fy: float) -> tuple[int, int]:
        return int((fx - 0.5) * self.w), int((fy - 0.5) * self.h)

    def click(self, fx: float, fy: float) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.b).move_to_element_with_offset(self.canvas, *self.at(fx, fy)).click().perform()

    def drag(self, a: tuple[float, float], b: tuple[float, float]) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        ActionChains(self.b).move_to_element_with_offset(self.canvas, *self.at(*a)).click_and_hold().move_to_element_with_offset(
            self.canvas, *self.at(*mid)
        ).move_to_element_with_offset(self.canvas, *self.at(*b)).release().perform()

    def button(self, element_id: str) -> None:
        from selenium.webdriver.common.by import By

        self.b.find_element(By.ID, element_id).click()

    def type_into(self, element_id: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        el = self.b.find_element(By.ID, element_id)
        el.clear()
        el.send_keys(text)
        self.b.execute_script("arguments[0].dispatchEvent(new Event('change'))", el)

    def field_ids(self) -> set[str]:
        from selenium.webdriver.common.by import By

        return {e.get_attribute("id") for e in self.b.find_elements(By.CSS_SELECTOR, "#form [id]")}

    def body(self, attr: str) -> str | None:
        from selenium.webdriver.common.by import By

        return self.b.find_element(By.TAG_NAME, "body").get_attribute(f"data-{attr}")


def _open(browser: Any, url: str, what: str = "loaded") -> _Page:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    page = None
    WebDriverWait(browser, 20).until(lambda d: _Page(d).body("snapshot") == what)
    page = _Page(browser)
    return page


def _save(browser: Any, page: _Page) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.button("save")
    WebDriverWait(browser, 15).until(lambda d: page.body("saved") in ("ok", "error"))
    assert page.body("saved") == "ok", browser.find_element(By.ID, "problems").text


@pytest.mark.browser
@pytest.mark.slow
def test_browser_draws_a_zone_an_exclusion_and_a_line_and_saves(
    browser: Any, server: CalibrateServer, site: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = _open(browser, server.url)
    assert abs(page.w / page.h - 768 / 432) < 0.02  # the canvas took the picture's size

    # A zone: four clicks then "Finish shape". It starts as a count zone: only classes and schedule.
    page.button("mode-zone")
    for fx, fy in [(0.20, 0.15), (0.60, 0.15), (0.60, 0.45), (0.20, 0.45)]:
        page.click(fx, fy)
    page.button("finish")
    assert page.field_ids() >= {"zone-field-id", "zone-field-kind", "classes", "schedule"}
    assert "zone-field-capacity" not in page.field_ids()
    page.type_into("zone-field-id", "plaza")

    # As a crowd zone it asks for the area and the LOS table, never a capacity or an operator.
    Select(browser.find_element(By.ID, "zone-field-kind")).select_by_value("crowd")
    ids = page.field_ids()
    assert {"zone-field-area_m2", "zone-field-los_table"} <= ids
    assert not {"zone-field-capacity", "zone-field-operator", "zone-field-limit_s", "zone-field-zone_type"} & ids
    page.type_into("zone-field-area_m2", "60")

    # A schedule as rows: weekdays 07:00-19:00 by default, then Saturday ticked too.
    page.button("add-window")
    browser.find_element(By.CSS_SELECTOR, '#schedule input[data-day="sat"]').click()
    start = browser.find_element(By.CSS_SELECTOR, "#schedule input.start")
    browser.execute_script("arguments[0].value = '08:30'; arguments[0].dispatchEvent(new Event('change'))", start)

    # An exclusion inside it (a kiosk), drawn on the picture.
    page.button("mode-exclude")
    for fx, fy in [(0.30, 0.25), (0.40, 0.25), (0.40, 0.35)]:
        page.click(fx, fy)
    page.click(0.30, 0.25)  # clicking the first corner closes it

    # A counting line drawn right to left: "in" is a crossing up the picture (to its right).
    page.button("mode-line")
    page.click(0.85, 0.6)
    page.click(0.15, 0.6)
    assert page.field_ids() >= {"line-field-id", "classes", "swap-line"}
    page.type_into("line-field-id", "crossing")

    _shot(browser, tmp_path, "calibrate-drawn")
    _save(browser, page)

    cfg = load_config(site)  # what check-config runs
    cam = cfg.cameras[0]
    zones = {z.id: z for z in cam.zones}
    assert set(zones) == {"kerb", "plaza"}
    plaza = zones["plaza"]
    assert plaza.kind == "crowd" and plaza.area_m2 == 60 and plaza.capacity is None
    xs, ys = [p[0] for p in plaza.polygon], [p[1] for p in plaza.polygon]
    assert min(xs) == pytest.approx(0.20, abs=0.01) and max(xs) == pytest.approx(0.60, abs=0.01)
    assert min(ys) == pytest.approx(0.15, abs=0.01) and max(ys) == pytest.approx(0.45, abs=0.01)
    assert len(plaza.exclude) == 1 and len(plaza.exclude[0]) == 3
    assert plaza.exclude[0][1][0] == pytest.approx(0.40, abs=0.01)
    assert plaza.schedule is not None
    w = plaza.schedule.windows[0]
    assert (w.days, w.start, w.end) == (["mon", "tue", "wed", "thu", "fri", "sat"], "08:30", "19:00")
    (line,) = cam.lines
    assert line.id == "crossing" and line.classes == ["person"]
    assert line.a[0] == pytest.approx(0.85, abs=0.01) and line.b[0] == pytest.approx(0.15, abs=0.01)
    text = site.read_text()
    for comment in COMMENTS:  # the technician's comments survive the page
        assert comment in text.splitlines(), comment
    assert Path(str(site) + ".bak").exists()


@pytest.mark.browser
@pytest.mark.slow
def test_browser_edits_shapes_and_checks_ground_points(browser: Any, site: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    data = yaml.safe_load(site.read_text())
    data["cameras"][0]["zones"].append(
        {"id": "bay", "kind": "bike_bay", "capacity": 8, "polygon": [[0.6, 0.1], [0.8, 0.1], [0.8, 0.3], [0.6, 0.3]],
         "exclude": [[[0.65, 0.15], [0.7, 0.15], [0.7, 0.2]]]}
    )
    data["cameras"][0]["lines"] = [{"id": "door", "a": [0.1, 0.5], "b": [0.5, 0.5]}]
    site.write_text(yaml.safe_dump(data, sort_keys=False))
    srv = CalibrateServer(CalibrateState.load(site, timeout_s=5), port=0).start()
    try:
        page = _open(browser, srv.url)
        # Drag kerb's first corner (0.1, 0.7) to (0.15, 0.6); drag the line's far end to (0.5, 0.4).
        page.drag((0.1, 0.7), (0.15, 0.6))
        page.drag((0.5, 0.5), (0.5, 0.4))
        # The bay is a bike bay: capacity and operator are there, area is not.
        page.click(0.75, 0.25)
        ids = page.field_ids()
        assert {"zone-field-capacity", "zone-field-operator"} <= ids and "zone-field-area_m2" not in ids
        # Select the bay's exclusion on the picture and delete just it; then select the line and delete it.
        page.click(0.685, 0.17)
        page.button("delete")
        page.click(0.3, 0.45)  # on the line, now from (0.1, 0.5) to (0.5, 0.4)
        assert browser.find_element(By.CSS_SELECTOR, "#line-list li.selected").text.startswith("door")
        page.button("delete")
        # Six ground points, G3 mistyped by 2 m: the check names it; corrected, it passes.
        page.button("mode-ground")
        pts = [(0.1, 0.95), (0.9, 0.95), (0.8, 0.55), (0.2, 0.55), (0.5, 0.75), (0.97, 0.5)]
        true_m = _true_ground([list(p) for p in pts], 768, 432)
        metres = [[round(x, 2), round(y, 2)] for x, y in true_m]
        typed = [list(m) for m in metres]
        typed[2][0] += 2.0
        for fx, fy in pts:
            page.click(fx, fy)
        rows = browser.find_elements(By.CSS_SELECTOR, "#ground-table tbody tr")
        assert len(rows) == 6
        for row, (mx, my) in zip(rows, typed, strict=True):
            for cls, v in ((".gx", mx), (".gy", my)):
                inp = row.find_element(By.CSS_SELECTOR, cls)
                inp.send_keys(str(v))
                browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", inp)
        page.button("check-ground")
        WebDriverWait(browser, 10).until(lambda d: page.body("check") not in (None, ""))
        assert page.body("check") == "suspect-3", browser.find_element(By.ID, "ground-result").text
        assert "G3 does not fit" in browser.find_element(By.ID, "ground-result").text
        assert "suspect" in browser.find_elements(By.CSS_SELECTOR, "#ground-table tbody tr")[2].get_attribute("class")
        _shot(browser, tmp_path, "calibrate-ground-check")
        g3 = browser.find_elements(By.CSS_SELECTOR, "#ground-table tbody tr")[2].find_element(By.CSS_SELECTOR, ".gx")
        g3.clear()
        g3.send_keys(str(metres[2][0]))
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", g3)
        page.button("check-ground")
        WebDriverWait(browser, 10).until(lambda d: page.body("check") == "ok")
        # The label of the point near the right edge stays inside the picture (drawn flipped left).
        _shot(browser, tmp_path, "calibrate-ground-ok")
        _save(browser, page)
    finally:
        srv.stop()

    cam = load_config(site).cameras[0]
    zones = {z.id: z for z in cam.zones}
    moved = zones["kerb"].polygon[0]
    assert moved[0] == pytest.approx(0.15, abs=0.01) and moved[1] == pytest.approx(0.6, abs=0.01)
    assert zones["kerb"].polygon[1:] == [(0.9, 0.7), (0.9, 0.9)]
    assert zones["bay"].exclude == [] and zones["bay"].capacity == 8
    assert cam.lines == []
    assert cam.calibration is not None and len(cam.calibration.image_points) == 6
    assert [list(p) for p in cam.calibration.ground_points_m] == metres


@pytest.mark.browser
@pytest.mark.slow
def test_browser_draws_and_edits_a_traffic_lane_of_a_no_parking_zone(
    browser: Any, server: CalibrateServer, site: Path, tmp_path: Path
) -> None:
    """Like an exclusion: select the no-parking zone, Draw lane, click its corners, close it; drag a corner;
    a second lane drawn and deleted again; saved into the zone's ``lanes``. Another kind has no lanes."""
    from selenium.webdriver.common.by import By

    page = _open(browser, server.url)
    # Draw lane needs a no-parking zone selected: with nothing selected it refuses and says why.
    page.button("mode-lane")
    assert "no-parking zone" in browser.find_element(By.ID, "status").text
    assert "active" not in (browser.find_element(By.ID, "mode-lane").get_attribute("class") or "")
    page.click(0.85, 0.85)  # inside the kerb zone (its corners: 0.1,0.7 / 0.9,0.7 / 0.9,0.9)
    assert browser.find_element(By.CSS_SELECTOR, "#zone-list li.selected").text.startswith("kerb")
    assert "No traffic lane" in browser.find_element(By.ID, "lanes-hint").text
    page.button("mode-lane")
    for fx, fy in [(0.45, 0.72), (0.88, 0.72), (0.88, 0.80), (0.45, 0.80)]:
        page.click(fx, fy)
    page.button("finish")
    assert "1 lane" in browser.find_element(By.CSS_SELECTOR, "#zone-list li.selected").text
    assert "1 traffic lane(s)" in browser.find_element(By.ID, "lanes-hint").text
    # Drag the lane's first corner to the left, as one drags an exclusion's.
    page.drag((0.45, 0.72), (0.35, 0.72))
    # A second lane, selected on the picture and deleted: only it goes.
    page.button("mode-lane")
    for fx, fy in [(0.6, 0.83), (0.85, 0.83), (0.85, 0.88)]:
        page.click(fx, fy)
    page.click(0.6, 0.83)  # clicking the first corner closes it
    assert "2 lanes" in browser.find_element(By.CSS_SELECTOR, "#zone-list li.selected").text
    _shot(browser, tmp_path, "calibrate-lanes-drawn")
    page.button("mode-select")
    page.click(0.78, 0.855)  # inside the second lane
    page.button("delete")
    assert "a traffic lane of kerb" in browser.find_element(By.ID, "status").text
    _save(browser, page)

    kerb = load_config(site).cameras[0].zones[0]
    (lane,) = kerb.lanes
    assert len(lane) == 4
    assert lane[0][0] == pytest.approx(0.35, abs=0.01) and lane[0][1] == pytest.approx(0.72, abs=0.01)
    assert lane[2][0] == pytest.approx(0.88, abs=0.01) and lane[2][1] == pytest.approx(0.80, abs=0.01)
    assert kerb.polygon == [(0.1, 0.7), (0.9, 0.7), (0.9, 0.9)]  # the zone itself did not move
    text = site.read_text()
    for comment in COMMENTS:  # the technician's comments survive
        assert comment in text.splitlines(), comment


@pytest.mark.browser
@pytest.mark.slow
def test_browser_live_view_of_a_file(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    clip = _clip(tmp_path / "c.avi", n=120)
    srv = CalibrateServer(CalibrateState.load(_file_site(tmp_path, clip), timeout_s=5), port=0).start()
    try:
        page = _open(browser, srv.url)
        browser.execute_script(
            "const s = document.getElementById('position'); s.value = '3'; s.dispatchEvent(new Event('change'))"
        )
        WebDriverWait(browser, 10).until(lambda d: "at 3.0 s" in d.find_element("id", "status").text)
        page.button("live")
        WebDriverWait(browser, 20).until(lambda d: int(page.body("live-frames") or 0) >= 4)
        label = browser.find_element("id", "position-label").text
        assert float(label.split()[0]) > 3.0  # the file played on from where the slider was
        _shot(browser, tmp_path, "calibrate-live")
        page.button("live")  # stop
        n = int(page.body("live-frames") or 0)
        time.sleep(1.5)
        assert int(page.body("live-frames") or 0) <= n + 1
    finally:
        srv.stop()


@pytest.mark.assets
def test_detection_preview_runs_the_configured_model(tmp_path: Path, assets: Path) -> None:
    from tests.fixtures.assets import require_asset

    img = require_asset("media/roboflow-inference_truck.jpg")
    path = tmp_path / "site.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "config_version": 1,
                "device_id": "pole-1",
                "site_id": "t",
                "cameras": [{"id": "kerb", "source": str(img), "model": "yolox_nano_416"}],
            }
        )
    )
    srv = CalibrateServer(CalibrateState.load(path, timeout_s=10), port=0).start()
    try:
        status, data, _ = _get(srv.url + "api/detect?camera=kerb")
    finally:
        srv.stop()
    assert status == 200, data
    vehicles = [d for d in data["detections"] if d["class"] in ("car", "truck", "bus")]
    assert vehicles, data
    best = max(vehicles, key=lambda d: d["confidence"])
    x1, y1, x2, y2 = best["box"]
    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    assert (x2 - x1) * (y2 - y1) > 0.2  # the pickup fills most of the picture
