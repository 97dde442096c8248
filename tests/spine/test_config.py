"""Site config: examples pass, broken configs are refused with one line naming the path."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from edge.config import config_hash, load_config, parse_config
from edge.config.site import SiteConfig
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "configs").glob("*.yaml"))

BASE: dict[str, Any] = {
    "config_version": 1,
    "device_id": "pole-17",
    "site_id": "gaoxin-south",
    "geo": {"lat": 30.54, "lon": 104.06},
    "cameras": [
        {
            "id": "cam0",
            "source": "/dev/video0",
            "detect_fps": 5,
            "model": "yolox_nano_416",
            "zones": [
                {"id": "kerb", "kind": "no_parking", "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 0.9], [0.1, 0.9]]},
                {"id": "plaza", "kind": "crowd", "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 0.4]]},
            ],
            "lines": [{"id": "door", "a": [0.2, 0.3], "b": [0.8, 0.3]}],
        }
    ],
}


def mutate(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """Copy BASE and set (or delete) the value at a dotted path like 'cameras.0.zones.1.polygon'."""
    data = copy.deepcopy(BASE)
    parts = path.split(".")
    node: Any = data
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if delete:
        del node[last]
    else:
        node[last] = value
    return data


BROKEN: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing device_id", mutate("device_id", delete=True), "device_id", "required"),
    ("missing cameras", mutate("cameras", delete=True), "cameras", "required"),
    ("missing config_version", mutate("config_version", delete=True), "config_version", "required"),
    ("wrong config_version", mutate("config_version", 2), "config_version", "1"),
    ("unknown top-level key", mutate("colour", "red"), "colour", "unknown key"),
    ("unknown camera key", mutate("cameras.0.fps", 5), "cameras[0].fps", "unknown key"),
    ("unknown zone key", mutate("cameras.0.zones.0.capcity", 5), "cameras[0].zones[0].capcity", "unknown key"),
    ("polygon of 2 points", mutate("cameras.0.zones.1.polygon", [[0, 0], [1, 1]]), "cameras[0].zones[1].polygon",
     "needs at least 3 points, got 2"),
    ("coordinate above 1", mutate("cameras.0.zones.0.polygon", [[0.1, 0.5], [1.4, 0.5], [0.9, 0.9]]),
     "cameras[0].zones[0].polygon", "outside 0..1"),
    ("negative coordinate", mutate("cameras.0.zones.0.polygon", [[-0.2, 0.5], [0.4, 0.5], [0.9, 0.9]]),
     "cameras[0].zones[0].polygon", "outside 0..1"),
    ("polygon not a list", mutate("cameras.0.zones.0.polygon", "square"), "cameras[0].zones[0].polygon", ""),
    ("unknown zone kind", mutate("cameras.0.zones.0.kind", "parking_lot"), "cameras[0].zones[0].kind", ""),
    ("duplicate zone id", mutate("cameras.0.zones.1.id", "kerb"), "cameras[0].zones[1].id", "duplicate zone id"),
    ("line id clashes with zone", mutate("cameras.0.lines.0.id", "kerb"), "cameras[0].lines[0].id", "already used"),
    ("line end outside frame", mutate("cameras.0.lines.0.b", [1.2, 0.3]), "cameras[0].lines[0].b", "outside 0..1"),
    ("negative detect_fps", mutate("cameras.0.detect_fps", -1), "cameras[0].detect_fps", "greater than 0"),
    ("negative hold_s", mutate("cameras.0.hold_s", -5), "cameras[0].hold_s", "greater than 0"),
    ("negative reconnect delay", mutate("cameras.0.reconnect_min_s", -1), "cameras[0].reconnect_min_s", ""),
    ("negative feature interval", mutate("rules.feature_interval_s", -60), "rules.feature_interval_s", "greater than 0"),
    ("bad URL scheme", mutate("cameras.0.source", "ftp://cam.local/stream"), "cameras[0].source", "scheme"),
    ("URL without host", mutate("cameras.0.source", "rtsp:///stream"), "cameras[0].source", "no host"),
    ("malformed URL", mutate("cameras.0.source", "rtsp:/cam.local/stream"), "cameras[0].source", "malformed URL"),
    ("negative device index", mutate("cameras.0.source", -1), "cameras[0].source", ">= 0"),
    ("empty source", mutate("cameras.0.source", " "), "cameras[0].source", "empty"),
    ("id with a slash", mutate("device_id", "pole/17"), "device_id", "not a valid id"),
    ("id with MQTT wildcard", mutate("cameras.0.id", "cam+"), "cameras[0].id", "not a valid id"),
    ("latitude out of range", mutate("geo.lat", 123.0), "geo.lat", "less than or equal to 90"),
    ("unknown time zone", mutate("timezone", "Mars/Olympus"), "timezone", "unknown time zone"),
    ("no cameras", mutate("cameras", []), "cameras", "at least 1"),
    ("duplicate camera id", {**copy.deepcopy(BASE), "cameras": [BASE["cameras"][0], BASE["cameras"][0]]},
     "cameras[1].id", "duplicate camera id"),
    ("resolution too small", mutate("cameras.0.resolution", [8, 8]), "cameras[0].resolution", "16..8192"),
    ("playback mode typo", mutate("cameras.0.playback", "fast"), "cameras[0].playback", ""),
    ("mask of 2 points", mutate("cameras.0.masks", [[[0, 0], [1, 1]]]), "cameras[0].masks", "needs at least 3 points"),
    ("calibration with 3 points", mutate("cameras.0.calibration", {
        "image_points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]], "ground_points_m": [[0, 0], [10, 0], [10, 10]]}),
     "cameras[0].calibration", "4"),
    ("self-intersecting zone (a bow tie)", mutate("cameras.0.zones.0.polygon", [[0.1, 0.5], [0.9, 0.9], [0.9, 0.5], [0.1, 0.9]]),
     "cameras[0].zones[0].polygon", "self-intersecting: the edge from point 0 to 1 crosses the edge from point 2 to 3"),
    ("zero-area zone (collinear points)", mutate("cameras.0.zones.1.polygon", [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]),
     "cameras[0].zones[1].polygon", "zero area"),
    ("zone whose outline folds back", mutate("cameras.0.zones.1.polygon", [[0.1, 0.1], [0.9, 0.1], [0.5, 0.1], [0.5, 0.6]]),
     "cameras[0].zones[1].polygon", "folds back on itself at point 1"),
    ("zone with a repeated point", mutate("cameras.0.zones.0.polygon", [[0.1, 0.5], [0.9, 0.5], [0.9, 0.5], [0.1, 0.9]]),
     "cameras[0].zones[0].polygon", "point 2 repeats point 1"),
    ("self-intersecting exclusion", mutate("cameras.0.zones.0.exclude", [[[0.2, 0.6], [0.3, 0.8], [0.3, 0.6], [0.2, 0.8]]]),
     "cameras[0].zones[0].exclude", "self-intersecting"),
    ("zero-area mask", mutate("cameras.0.masks", [[[0.2, 0.2], [0.2, 0.4], [0.2, 0.6]]]), "cameras[0].masks", "zero area"),
]


def test_base_config_is_valid() -> None:
    cfg = parse_config(copy.deepcopy(BASE))
    assert cfg.cameras[0].zones[1].id == "plaza"
    with pytest.raises(ValidationError):  # frozen
        cfg.device_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(("name", "data", "path", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_names_the_path(name: str, data: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    problems = info.value.problems
    assert problems, name
    hits = [p for p in problems if p.startswith(path + ":") or p.startswith(path + "[") or p.startswith(path + ".")]
    assert hits, f"{name}: no problem names {path!r}: {problems}"
    assert words.lower() in " ".join(hits).lower(), f"{name}: {hits}"
    assert all("\n" not in p for p in problems)


def test_at_least_25_broken_configs() -> None:
    assert len(BROKEN) >= 25


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    data = mutate("cameras.0.source", "rtsp://${CAM_HOST}:${CAM_PORT:-554}/live")
    data["cameras"][0]["detect_fps"] = "${FPS}"
    monkeypatch.setenv("CAM_HOST", "10.1.2.3")
    monkeypatch.setenv("FPS", "2.5")
    cfg = parse_config(data)
    assert cfg.cameras[0].source == "rtsp://10.1.2.3:554/live"
    assert cfg.cameras[0].detect_fps == 2.5
    monkeypatch.delenv("CAM_HOST")
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.problems == [
        "cameras[0].source: environment variable CAM_HOST is not set (set it, or write ${CAM_HOST:-default})"
    ]


def test_config_hash_changes_with_content() -> None:
    a = parse_config(copy.deepcopy(BASE))
    b = parse_config(mutate("cameras.0.detect_fps", 2))
    assert config_hash(a) == config_hash(parse_config(copy.deepcopy(BASE)))
    assert config_hash(a) != config_hash(b)


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for f in model.model_fields.values():
        for t in _types(f.annotation):
            if isinstance(t, type) and issubclass(t, BaseModel):
                _models(t, seen)


def _types(ann: Any) -> list[Any]:
    out = [ann]
    for a in getattr(ann, "__args__", ()) or ():
        out.extend(_types(a))
    return out


def test_every_config_field_is_described_and_models_are_strict() -> None:
    seen: set[type[BaseModel]] = set()
    _models(SiteConfig, seen)
    assert len(seen) >= 8
    missing = [f"{m.__name__}.{n}" for m in seen for n, f in m.model_fields.items() if not f.description]
    assert missing == []
    loose = [m.__name__ for m in seen if m.model_config.get("extra") != "forbid" or not m.model_config.get("frozen")]
    assert loose == []


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_pass_check_config(path: Path) -> None:
    r = run_cli("check-config", "--off-box", str(path))  # the examples name the TLS files of a real box
    assert (r.returncode, r.stdout.strip()) == (0, "OK"), r.stderr


def test_examples_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"no-parking-street", "bike-bay", "plaza-crowd", "dev-sim"} <= names


def test_check_config_cli_reports_problems_without_traceback(tmp_path: Path) -> None:
    bad = mutate("cameras.0.zones.1.polygon", [[0, 0], [1, 1]])
    bad["cameras"][0]["detect_fps"] = 0
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    r = run_cli("check-config", str(f))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert "cameras[0].zones[1].polygon: needs at least 3 points, got 2" in lines
    assert any(ln.startswith("cameras[0].detect_fps:") for ln in lines), lines
    assert r.stdout == ""


def test_unknown_model_is_refused_by_check_config(tmp_path: Path) -> None:
    bad = mutate("cameras.0.model", "no_such_model")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    r = run_cli("check-config", str(f))
    assert r.returncode == 2, r.stdout
    lines = r.stderr.strip().splitlines()
    assert any(ln.startswith("cameras[0].model:") and "no_such_model" in ln for ln in lines), lines


@pytest.mark.parametrize(
    ("text", "words"),
    [("cameras: [\n  - id: x\n   bad", "YAML syntax error at line"), ("", "empty"), ("- a\n- b\n", "mapping")],
)
def test_unreadable_yaml(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_config(f)
    r = run_cli("check-config", str(f))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


LOL = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i > 1 else ', '.join(['lol'] * 9)}]\n" for i in range(1, 10)
)

# Files that must be refused before anything is built from them: (name, bytes, YAML path the line
# starts with (or the file, ""), words). check-config, load_config and reload_config refuse each.
BROKEN_FILES: list[tuple[str, bytes, str, str]] = [
    ("not UTF-8", yaml.safe_dump(BASE).encode().replace(b"pole-17", b"pole-\xb917"), "", "is not UTF-8 text (byte 0xb9 at line"),
    ("UTF-16 (Notepad)", yaml.safe_dump(BASE).encode("utf-16"), "", "is UTF-16 text, not UTF-8"),
    ("over 1 MiB", b"config_version: 1\n" + b"# padding\n" * 120_000, "",
     "over the 1,048,576 a site config may have"),
    ("binary", b"\x7fELF\x02\x01\x01\x00\x00" + bytes(range(256)), "", "is a binary"),
    ("recursive alias", b"config_version: 1\ncameras: &c\n  - id: cam0\n    zones: *c\n", "cameras[0].zones",
     "recursive alias *c at line 4 contains itself"),
    ("billion laughs (9 levels of 9)", LOL.encode(), "l9", "expand this value (line 9) to"),
    ("billion laughs below a real key", yaml.safe_dump(BASE).encode() + b"extra:\n" + b"".join(
        b"  " + line.encode() + b"\n" for line in LOL.splitlines()), "extra.l9", "an alias bomb"),
    ("duplicate key", b"config_version: 1\ndevice_id: pole-17\nsite_id: s\ndevice_id: pole-18\ncameras: []\n",
     "device_id", "duplicate key 'device_id' at line 4 (first at line 2)"),
    ("duplicate key in a zone", yaml.safe_dump(BASE, sort_keys=False).encode().replace(
        b"kind: crowd", b"kind: crowd\n    kind: count"), "cameras[0].zones[1].kind", "duplicate key 'kind'"),
    ("nested 100000 deep (flow)", b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "", "nested deeper than 64 levels at line 1"),
    ("nested 100 deep (block)", b"".join(b"  " * i + b"k:\n" for i in range(100)), "k.k.k.k...", "nested deeper than 64 levels"),
]


@pytest.mark.parametrize(("name", "data", "path", "words"), BROKEN_FILES, ids=[b[0] for b in BROKEN_FILES])
def test_broken_file_is_refused_with_one_line(tmp_path: Path, name: str, data: bytes, path: str, words: str) -> None:
    import time
    import tracemalloc

    from edge.config.loader import parse_config_text

    f = tmp_path / "site.yaml"
    f.write_bytes(data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as info:
            load_config(f)
        took = time.perf_counter() - t0
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < 2.0 and peak < 20_000_000, f"{name}: {took:.1f} s, {peak / 1e6:.0f} MB to refuse"
    lines = info.value.problems
    assert len(lines) == 1 and "\n" not in lines[0], lines
    where = f"{f}: " if not path else f"{path}: "
    assert lines[0].startswith(where) and words in lines[0], lines
    r = run_cli("check-config", str(f))
    assert (r.returncode, r.stdout) == (2, ""), r
    assert r.stderr.strip().splitlines() == lines and "Traceback" not in r.stderr
    # The same text sent as a reload_config command: the agent reads it with the same limits.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # cannot travel inside a JSON string (the command's own UTF-8 check refuses it)
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, source="reload_config")
    assert len(info.value.problems) == 1 and words in info.value.problems[0], info.value.problems


def test_missing_tls_files_are_refused_on_the_box_and_skipped_off_it(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["uplink"] = {"mqtt": {"host": "mqtt.city.example", "tls": {
        "ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "box.pem"), "key_file": str(tmp_path / "box.key")}}}
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    f = tmp_path / "site.yaml"
    f.write_text(yaml.safe_dump(data))
    r = run_cli("check-config", str(f))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"uplink.mqtt.tls.cert_file: {tmp_path / 'box.pem'} does not exist; install the box's TLS files there or fix the path",
        f"uplink.mqtt.tls.key_file: {tmp_path / 'box.key'} does not exist; install the box's TLS files there or fix the path",
    ]
    r = run_cli("check-config", "--off-box", str(f))
    assert (r.returncode, r.stdout.strip()) == (0, "OK"), r.stderr


def test_missing_file() -> None:
    r = run_cli("check-config", "/nonexistent/site.yaml")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_version_flag() -> None:
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("edge-agent ")


def test_reload_config_text_with_nul_is_refused_as_binary() -> None:
    from edge.config.loader import parse_config_text

    with pytest.raises(ConfigError, match=r"reload_config: is binary data \(NUL at character 3\)"):
        parse_config_text("a: \0b", source="reload_config")
