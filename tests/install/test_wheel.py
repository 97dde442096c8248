"""The runtime install, as a box gets it: the wheel, without dev extras, in a fresh venv.

Built from a clean copy of the sources, installed with pip (PyPI through pip's cache) into a venv
made from the base interpreter, and run from a temporary directory with a clean environment: the
repository's .venv and source tree are out of reach. Wall time: about two minutes on a loaded 2-core
machine (venv, build and install ~60 s from pip's cache, the whole demo ~45 s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.assets import require_asset

from .conftest import REPO, base_python, check_run_events, clean_env, make_clip_script, run, site_config

pytestmark = pytest.mark.slow

DEV_ONLY = ("jsonschema", "pytest", "hypothesis", "onnx", "selenium", "rfc8785", "mypy", "ruff", "importlinter")
OWN = ("edge", "firmware_sim", "city")


class Box:
    """A fresh venv with the wheel installed, and a working directory outside the repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.cwd = root / "anywhere"
        self.bin = self.venv / "bin"
        self.wheel: Path | None = None
        self.timings: dict[str, float] = {}

    def python(self, code: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return run([str(self.bin / "python"), "-c", code], cwd=self.cwd, **kw)  # type: ignore[arg-type]

    def agent(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run([str(self.bin / "edge-agent"), *args], cwd=self.cwd, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Box:
    b = Box(tmp_path_factory.mktemp("box"))
    b.cwd.mkdir()
    src = b.root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for pkg in OWN:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    t0 = time.monotonic()
    run([base_python(), "-m", "venv", str(b.venv)], cwd=b.root)
    pip = [str(b.bin / "python"), "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(b.root / "dist"), str(src)], cwd=b.root)
    b.timings["build"] = time.monotonic() - t0
    (b.wheel,) = (b.root / "dist").glob("edge-*.whl")
    t0 = time.monotonic()
    run([*pip, "install", "--quiet", str(b.wheel)], cwd=b.root)  # no extras: the runtime only
    b.timings["install"] = time.monotonic() - t0
    return b


def test_the_installed_copy_runs_and_no_dev_package_came_with_it(box: Box) -> None:
    out = box.python(
        "import importlib.util, json, edge, firmware_sim, city\n"
        f"print(json.dumps({{'files': [m.__file__ for m in (edge, firmware_sim, city)],\n"
        f"  'dev': [n for n in {DEV_ONLY!r} if importlib.util.find_spec(n)]}}))"
    )
    found = json.loads(out.stdout)
    site = str(box.venv / "lib")
    assert all(f.startswith(site) for f in found["files"]), found["files"]  # not the repository's sources
    assert found["dev"] == [], f"dev-only packages in a runtime install: {found['dev']}"
    assert box.agent("--version").stdout.strip().startswith("edge-agent ")


def test_every_module_imports_with_the_runtime_dependencies_alone(box: Box) -> None:
    out = box.python(
        "import importlib, json, pkgutil\n"
        "bad, n = {}, 0\n"
        f"for top in {OWN!r}:\n"
        "    pkg = importlib.import_module(top)\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
        "        if m.name.endswith('__main__'):\n"
        "            continue  # runs the CLI\n"
        "        n += 1\n"
        "        try:\n"
        "            importlib.import_module(m.name)\n"
        "        except BaseException as exc:\n"
        "            bad[m.name] = repr(exc)\n"
        "print(json.dumps({'n': n, 'bad': bad}))"
    )
    result = json.loads(out.stdout)
    assert result["bad"] == {}
    assert result["n"] > 100


def test_every_third_party_import_is_a_declared_runtime_dependency(box: Box) -> None:
    """An import satisfied only by accident (a dependency of a dependency, a dev extra) fails here."""
    out = box.python(
        "import ast, importlib.metadata as md, json, pathlib, re, sys\n"
        "import edge\n"
        "site = pathlib.Path(edge.__file__).parents[1]\n"
        "name = lambda r: re.split(r'[ ;<>=!~\\[]', r, maxsplit=1)[0].lower().replace('_', '-')\n"
        "reqs = md.requires('edge') or []\n"
        "declared = {name(r) for r in reqs if 'extra ==' not in r}\n"
        "optional = {name(r) for r in reqs if 'extra ==' in r and 'extra == \"dev\"' not in r}\n"
        "owners = md.packages_distributions()\n"
        "found = {}\n"
        f"for top in {OWN!r}:\n"
        "    for f in (site / top).rglob('*.py'):\n"
        "        for node in ast.walk(ast.parse(f.read_text(encoding='utf-8'))):\n"
        "            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (\n"
        "                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])\n"
        "            for name in names:\n"
        "                top_name = name.split('.')[0]\n"
        "                if top_name in sys.stdlib_module_names or top_name in " + repr(OWN) + ":\n"
        "                    continue\n"
        "                dists = {d.lower().replace('_', '-') for d in owners.get(top_name, [])}\n"
        "                found.setdefault(top_name, sorted(dists) or [top_name])  # not installed: its own name\n"
        "print(json.dumps({'declared': sorted(declared), 'optional': sorted(optional), 'found': found}))"
    )
    result = json.loads(out.stdout)
    # Runtime dependencies, and the optional extras a technician installs for a tool (report charts,
    # model quantize, the consumer's PostgreSQL): those modules import them only when used, which
    # the import-everything test in this venv without extras checks.
    declared = set(result["declared"]) | set(result["optional"])
    undeclared = {name: dists for name, dists in result["found"].items() if not declared & set(dists)}
    assert undeclared == {}, f"imported but not a runtime dependency or optional extra of edge: {undeclared}"
    assert {"matplotlib", "onnx"} <= set(result["optional"])
    assert {"numpy", "cv2", "onnxruntime", "paho", "fastjsonschema"} <= set(result["found"])


def test_the_wheel_carries_every_data_file_of_the_packages(box: Box) -> None:
    assert box.wheel is not None
    names = set(zipfile.ZipFile(box.wheel).namelist())
    data = [p.relative_to(REPO).as_posix() for pkg in OWN for p in (REPO / pkg).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "expected schemas, static files and scenarios"
    missing = [d for d in data if d not in names]
    assert missing == [], f"package data left out of the wheel (add it to [tool.setuptools.package-data]): {missing}"
    assert "firmware_sim/street/demo-street.yaml" in names and "edge/events/schemas/envelope.json" in names


def test_check_config_from_the_installed_package(box: Box) -> None:
    cfg = box.python(
        "from importlib import resources; print(resources.files('firmware_sim') / 'street' / 'demo-street.yaml')"
    ).stdout.strip()
    ok = box.agent("check-config", cfg)
    assert ok.stdout.strip() == "OK"
    bad = box.cwd / "bad.yaml"
    bad.write_text("config_version: 1\ndevice_id: p\nsite_id: s\ncameras: [{id: c, source: x.mp4, fps: 5}]\n")
    refused = box.agent("check-config", str(bad), check=False)
    assert refused.returncode == 2
    assert "cameras[0].fps: unknown key 'fps'" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr


def test_demo_runs_from_any_directory(box: Box) -> None:
    t0 = time.monotonic()
    out = box.agent("demo", "--out", str(box.root / "demo-out"))
    box.timings["demo"] = time.monotonic() - t0
    assert "OK: 7/7 expected episodes found, 0 spurious" in out.stdout, out.stdout[-2000:]
    assert (box.root / "demo-out" / "events.jsonl").stat().st_size > 0
    print("install timings (s):", {k: round(v, 1) for k, v in box.timings.items()})


def test_run_on_a_file_source_until_its_end(box: Box) -> None:
    clip = box.root / "clip.avi"
    box.python(make_clip_script(str(clip)))
    state = box.root / "state"
    config = box.cwd / "site.yaml"
    config.write_text(site_config(str(clip), str(state)))
    out = box.agent("run", "--config", str(config), timeout=300)
    assert "Traceback" not in out.stderr
    check_run_events((state / "events.jsonl").read_text())


def test_the_installed_detector_runs_a_real_model(box: Box) -> None:
    """onnxruntime and OpenCV from the runtime install, a manifest and weights from EDGE_MODEL_PATH
    (the manifests are not in the wheel: the Debian package puts them in /var/lib/edge/models)."""
    image = require_asset("media/darknet_dog_bicycle.jpg")
    weights = require_asset("models/yolox_nano_416.onnx").parent
    out = run([str(box.bin / "edge-agent"), "detect", "--model", "yolox_nano_416", str(image)],
              cwd=box.cwd, env=clean_env(EDGE_MODEL_PATH=f"{REPO / 'models'}:{weights}"))
    line = json.loads(out.stdout.strip().splitlines()[-1])
    labels = {d["label"] for d in line["detections"] if d["score"] > 0.5}
    assert {"dog", "bicycle", "car"} <= labels, line
