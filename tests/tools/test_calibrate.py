"""The calibration page: its JSON API, and the round trip in headless Chromium."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
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
from edge.tools.calibrate import CalibrateServer, CalibrateState, reprojection

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    img = np.full((432, 768, 3), (60, 90, 60), np.uint8)
    cv2.rectangle(img, (100, 300), (700, 400), (120, 120, 120), -1)
    cv2.imwrite(str(tmp_path / "street.png"), img)
    cfg = {
        "config_version": 1,
        "device_id": "pole-1",
        "site_id": "test-site",
        "cameras": [
            {
                "id": "cam0",
                "source": str(tmp_path / "street.png"),
                "model": "motion",
                "zones": [
                    {"id": "kerb", "kind": "no_parking", "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9]]}
                ],
            }
        ],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def server(site: Path) -> Iterator[CalibrateServer]:
    srv = CalibrateServer(CalibrateState.load(site, timeout_s=5), port=0).start()
    yield srv
    srv.stop()


def _get(url: str) -> tuple[int, Any, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            ctype = r.headers.get("Content-Type", "")
            return r.status, json.loads(body) if "json" in ctype else body, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def _post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
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


def test_reprojection_is_exact_for_a_true_homography() -> None:
    img = [[0.1, 0.9], [0.9, 0.9], [0.8, 0.5], [0.2, 0.5], [0.5, 0.7]]
    h = np.array([[0.05, 0.01, -3.0], [0.002, 0.08, -20.0], [0.0001, 0.002, 1.0]])
    px = np.array(img) * [800, 600]
    pts = np.c_[px, np.ones(len(px))] @ h.T
    ground = (pts[:, :2] / pts[:, 2:]).tolist()
    assert reprojection(img, ground, 800, 600)["max_error_m"] < 1e-3
    ground[4] = [ground[4][0] + 2.0, ground[4][1]]  # one point mis-measured by 2 m
    assert reprojection(img, ground, 800, 600)["max_error_m"] > 0.3
    with pytest.raises(ValueError, match="at least 4"):
        reprojection(img[:3], ground[:3], 800, 600)


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


@pytest.mark.browser
@pytest.mark.slow
def test_browser_round_trip_draw_zone_and_save(
    browser: Any, server: CalibrateServer, site: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 15)
    browser.get(server.url)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-snapshot") == "loaded")
    canvas = browser.find_element(By.ID, "canvas")
    cw, ch = canvas.size["width"], canvas.size["height"]
    assert abs(cw / ch - 768 / 432) < 0.02  # the canvas took the snapshot's size

    # Draw a quadrilateral in the upper half: four clicks then "Finish zone".
    browser.find_element(By.ID, "mode-draw").click()
    corners = [(0.20, 0.15), (0.60, 0.15), (0.60, 0.45), (0.20, 0.45)]
    for fx, fy in corners:
        # selenium 4 offsets are from the element's centre
        ActionChains(browser).move_to_element_with_offset(
            canvas, int((fx - 0.5) * cw), int((fy - 0.5) * ch)
        ).click().perform()
    browser.find_element(By.ID, "finish-zone").click()

    # Name it, make it a bike bay.
    zone_id = browser.find_element(By.ID, "zone-field-id")
    zone_id.clear()
    zone_id.send_keys("bay-north")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", zone_id)
    Select(browser.find_element(By.ID, "zone-field-kind")).select_by_value("bike_bay")
    capacity = browser.find_element(By.ID, "zone-field-capacity")  # the form is rebuilt after each change
    capacity.send_keys("12")
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", capacity)
    items = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#zone-list li")]
    assert any(t.startswith("bay-north") for t in items), items

    browser.save_screenshot(str(tmp_path / "calibrate.png"))
    browser.find_element(By.ID, "save").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") in ("ok", "error"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == "ok", (
        browser.find_element(By.ID, "problems").text
    )
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "saved to"))

    cfg = load_config(site)  # what check-config runs
    zones = {z.id: z for z in cfg.cameras[0].zones}
    assert set(zones) == {"kerb", "bay-north"}
    bay = zones["bay-north"]
    assert bay.kind == "bike_bay" and bay.capacity == 12
    xs = [p[0] for p in bay.polygon]
    ys = [p[1] for p in bay.polygon]
    assert len(bay.polygon) == 4
    assert min(xs) == pytest.approx(0.20, abs=0.01) and max(xs) == pytest.approx(0.60, abs=0.01)
    assert min(ys) == pytest.approx(0.15, abs=0.01) and max(ys) == pytest.approx(0.45, abs=0.01)
    assert Path(str(site) + ".bak").exists()


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


@pytest.mark.browser
@pytest.mark.slow
def test_browser_move_vertex_delete_zone_and_ground_points(browser: Any, site: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    data = yaml.safe_load(site.read_text())
    data["cameras"][0]["zones"].append(
        {
            "id": "bay",
            "kind": "bike_bay",
            "capacity": 8,
            "polygon": [[0.6, 0.1], [0.8, 0.1], [0.8, 0.3], [0.6, 0.3]],
        }
    )
    site.write_text(yaml.safe_dump(data, sort_keys=False))
    srv = CalibrateServer(CalibrateState.load(site, timeout_s=5), port=0).start()
    try:
        wait = WebDriverWait(browser, 15)
        browser.get(srv.url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-snapshot") == "loaded")
        canvas = browser.find_element(By.ID, "canvas")
        cw, ch = canvas.size["width"], canvas.size["height"]

        def at(fx: float, fy: float) -> tuple[int, int]:
            return int((fx - 0.5) * cw), int((fy - 0.5) * ch)

        # Drag kerb's first vertex (0.1, 0.7) to (0.15, 0.6).
        ActionChains(browser).move_to_element_with_offset(
            canvas, *at(0.1, 0.7)
        ).click_and_hold().move_to_element_with_offset(canvas, *at(0.13, 0.65)).move_to_element_with_offset(
            canvas, *at(0.15, 0.6)
        ).release().perform()
        # Select the bay by clicking inside it, then delete it.
        ActionChains(browser).move_to_element_with_offset(canvas, *at(0.7, 0.2)).click().perform()
        assert browser.find_element(By.CSS_SELECTOR, "#zone-list li.selected").text.startswith("bay")
        browser.find_element(By.ID, "delete-zone").click()
        assert [li.text.split()[0] for li in browser.find_elements(By.CSS_SELECTOR, "#zone-list li")] == [
            "kerb"
        ]

        # Four ground points with their metres.
        browser.find_element(By.ID, "mode-ground").click()
        pts = [(0.1, 0.95), (0.9, 0.95), (0.8, 0.55), (0.2, 0.55)]
        metres = [(0, 0), (12, 0), (11, 8), (1, 8)]
        for fx, fy in pts:
            ActionChains(browser).move_to_element_with_offset(canvas, *at(fx, fy)).click().perform()
        rows = browser.find_elements(By.CSS_SELECTOR, "#ground-table tbody tr")
        assert len(rows) == 4
        for row, (mx, my) in zip(rows, metres, strict=True):
            for cls, v in ((".gx", mx), (".gy", my)):
                inp = row.find_element(By.CSS_SELECTOR, cls)
                inp.send_keys(str(v))
                browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", inp)
        browser.find_element(By.ID, "check-homography").click()
        wait.until(lambda d: "reprojection error" in d.find_element(By.ID, "homography-result").text)

        browser.find_element(By.ID, "save").click()
        wait.until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-saved") in ("ok", "error")
        )
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-saved") == "ok", (
            browser.find_element(By.ID, "problems").text
        )
    finally:
        srv.stop()

    cam = load_config(site).cameras[0]
    assert [z.id for z in cam.zones] == ["kerb"]
    moved = cam.zones[0].polygon[0]
    assert moved[0] == pytest.approx(0.15, abs=0.01) and moved[1] == pytest.approx(0.6, abs=0.01)
    assert cam.zones[0].polygon[1:] == [(0.9, 0.7), (0.9, 0.9)]
    assert cam.calibration is not None
    assert [tuple(p) for p in cam.calibration.ground_points_m] == [(float(a), float(b)) for a, b in metres]
    for got, (fx, fy) in zip(cam.calibration.image_points, pts, strict=True):
        assert got[0] == pytest.approx(fx, abs=0.01) and got[1] == pytest.approx(fy, abs=0.01)
