"""The Debian package a fleet installs: built by scripts/build-deb.sh, installed with dpkg.

The package is installed into a throwaway root: a copy-on-write overlay of this machine's own Debian
system, entered with chroot in a private mount namespace, so dpkg, adduser, the maintainer scripts
and the agent run as on a box while this machine stays untouched. Needs root and overlayfs (CI has
both). Wall time: about 95 s on a loaded 2-core machine (build ~20 s, each dpkg -i ~20-30 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, check_run_events, make_clip_script, run, site_config, skip_or_fail

pytestmark = pytest.mark.slow

ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Root:
    """A throwaway copy of this machine's root filesystem (overlay upper dir in a temp folder)."""

    def __init__(self, base: Path) -> None:
        self.upper, self.work, self.mnt = base / "upper", base / "work", base / "mnt"
        for d in (self.upper, self.work, self.mnt):
            d.mkdir(parents=True)

    def sh(self, script: str, *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run a shell script as root inside the throwaway root."""
        mnt = str(self.mnt)
        setup = (
            f"mount -t overlay overlay -o lowerdir=/,upperdir={self.upper},workdir={self.work} {mnt} && "
            f"mount -t proc proc {mnt}/proc && mount --bind /dev {mnt}/dev && "
            f"mount -t tmpfs tmpfs {mnt}/run && mount -t tmpfs tmpfs {mnt}/tmp && "
            f'exec chroot {mnt} /usr/bin/env -i PATH={ROOT_PATH} HOME=/root LANG=C.UTF-8 /bin/sh -ec "$1"'
        )
        return run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", setup, "root", script],
                   cwd=Path("/"), env={"PATH": ROOT_PATH}, check=check, timeout=timeout)

    def path(self, inside: str) -> Path:
        """Where a file written inside the root lands on this machine (the overlay's upper dir)."""
        return self.upper / inside.lstrip("/")


def _can_overlay(base: Path) -> str | None:
    if os.geteuid() != 0:
        return "installing a .deb into a throwaway root needs root"
    for tool in ("unshare", "chroot", "dpkg", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = Root(base / "probe")
    try:
        probe.sh("true", timeout=60)
    except pytest.fail.Exception as exc:
        return f"cannot mount an overlay of / here ({str(exc).splitlines()[-1][:200]})"
    return None


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        skip_or_fail("dpkg-deb is not installed (apt-get install dpkg-dev)")
    out = tmp_path_factory.mktemp("deb")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if not p.startswith(str(REPO)))
    result = subprocess.run(["bash", "scripts/build-deb.sh", "--out", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("edge_*.deb")
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, deb: Path) -> Root:
    base = tmp_path_factory.mktemp("root")
    problem = _can_overlay(base)
    if problem:
        skip_or_fail(problem)
    r = Root(base / "box")
    (r.path("/srv/edge-test")).mkdir(parents=True)
    shutil.copy2(deb, r.path("/srv/edge-test/edge.deb"))
    r.sh("dpkg -i /srv/edge-test/edge.deb")
    return r


def _control(deb: Path) -> dict[str, str]:
    text = run(["dpkg-deb", "--field", str(deb)], cwd=deb.parent).stdout
    return dict(re.findall(r"^([A-Za-z-]+): (.*)$", text, re.MULTILINE))


def test_package_fields_and_contents(deb: Path) -> None:
    fields = _control(deb)
    assert fields["Package"] == "edge"
    assert fields["Architecture"] == run(["dpkg", "--print-architecture"], cwd=REPO).stdout.strip()
    assert "python3-venv" in fields["Depends"] and "adduser" in fields["Depends"]
    assert re.search(r"python3 \(>= 3\.\d+\), python3 \(<< 3\.\d+\)", fields["Depends"])
    listing = run(["dpkg-deb", "--contents", str(deb)], cwd=deb.parent).stdout
    files = {line.split()[-1].lstrip("."): line for line in listing.splitlines() if not line.startswith("l")}
    links = [line for line in listing.splitlines() if line.startswith("l")]
    assert any("./usr/bin/edge-agent -> /opt/edge/venv/bin/edge-agent" in line for line in links)
    assert files["/etc/edge/edge.env"].startswith("-rw-r-----")
    for manifest in (REPO / "models").glob("*.yaml"):
        assert f"/var/lib/edge/models/{manifest.name}" in files
    wheels = {Path(f).name for f in files if f.startswith("/opt/edge/wheels/") and f.endswith(".whl")}
    assert any(w.startswith("edge-") for w in wheels)
    conffiles = subprocess.run(["dpkg-deb", "--info", str(deb), "conffiles"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert conffiles == ["/etc/edge/edge.env"]
    # One wheel per locked package (the lock itself is /opt/edge/requirements.txt), and the unit as in the repository.
    lock = _deb_file(deb, "opt/edge/requirements.txt")
    pins = {ln.split("==")[0].lower().replace("-", "_") for ln in lock.splitlines() if "==" in ln}
    names = {w.split("-")[0].lower() for w in wheels} - {"edge"}
    assert names == pins
    assert _deb_file(deb, "usr/lib/systemd/system/edge-agent.service") == (REPO / "deploy" / "edge-agent.service").read_text()


def _deb_file(deb: Path, member: str) -> str:
    out = subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -xO ./{member}", shell=True,
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_install_makes_the_user_the_state_folder_and_an_enabled_service(root: Root) -> None:
    out = root.sh(
        "id -nG edge; stat -c '%U:%G %a' /var/lib/edge /etc/edge/edge.env; "
        "readlink /etc/systemd/system/multi-user.target.wants/edge-agent.service; "
        "getent group gpio >/dev/null && echo has-gpio || echo no-gpio"
    ).stdout.splitlines()
    groups = out[0].split()
    assert {"edge", "dialout", "video"} <= set(groups)  # the groups Debian has; gpio only where it exists
    assert ("gpio" in groups) == (out[4] == "has-gpio")
    assert out[1] == "edge:edge 750" and out[2] == "root:edge 640"
    assert out[3].endswith("/systemd/system/edge-agent.service")


def test_systemd_accepts_the_installed_unit(root: Root) -> None:
    if shutil.which("systemd-analyze") is None:
        skip_or_fail("systemd-analyze is not installed")
    out = root.sh("systemd-analyze verify --man=no edge-agent.service 2>&1")
    assert out.stdout.strip() == "", out.stdout


def test_the_venv_runs_the_lock_and_sees_debians_python_packages(root: Root) -> None:
    """--system-site-packages lets the agent import Debian's python3-lgpio on a Pi; the locked
    packages in the venv come first, whatever versions the system has."""
    out = root.sh(
        "/opt/edge/venv/bin/python -c 'import json, sys, cryptography, numpy; "
        "print(json.dumps({\"path\": sys.path, \"crypto\": cryptography.__version__, \"numpy\": numpy.__version__}))'"
    )
    info = json.loads(out.stdout)
    venv_site = next(i for i, p in enumerate(info["path"]) if p.startswith("/opt/edge/venv/lib/") and p.endswith("site-packages"))
    system = info["path"].index("/usr/lib/python3/dist-packages")
    assert venv_site < system
    lock = root.sh("cat /opt/edge/requirements.txt").stdout
    assert f"cryptography=={info['crypto']} " in lock and f"numpy=={info['numpy']} " in lock
    hint = root.sh(
        "/opt/edge/venv/bin/python -c 'from edge.hardware.pins import make_pin_factory\n"
        "try:\n    make_pin_factory(\"auto\")\nexcept Exception as e:\n    print(e)'"
    ).stdout
    assert "python3-lgpio" in hint  # on this non-Pi machine: no GPIO chip, and the message says what to install


def test_the_edge_user_runs_the_agent_on_a_file_and_the_demo(root: Root) -> None:
    clip = "/var/lib/edge/clip.avi"
    script = make_clip_script(clip).replace("'", "'\"'\"'")
    root.sh(f"runuser -u edge -- /opt/edge/venv/bin/python -c '{script}'")
    root.path("/etc/edge").mkdir(parents=True, exist_ok=True)
    root.path("/etc/edge/site.yaml").write_text(site_config(clip, "/var/lib/edge/run"))
    out = root.sh(
        "edge-agent check-config /etc/edge/site.yaml && "
        "runuser -u edge -- edge-agent run --config /etc/edge/site.yaml 2>&1 && "
        "echo '=== events' && cat /var/lib/edge/run/events.jsonl", timeout=300
    )
    first, rest = out.stdout.split("\n", 1)
    assert first == "OK"
    log, events = rest.split("=== events\n", 1)
    assert "Traceback" not in log
    check_run_events(events)
    demo = root.sh("cd /tmp && runuser -u edge -- edge-agent demo --duration 100 --out /var/lib/edge/demo", timeout=300)
    assert "parking_violation  start   kerb-no-parking" in demo.stdout, demo.stdout[-2000:]


def test_upgrade_keeps_local_settings_and_remove_then_purge_clean_up(root: Root, deb: Path) -> None:
    root.sh("echo MQTT_PASSWORD=s3cret >> /etc/edge/edge.env")
    root.sh("dpkg -i /srv/edge-test/edge.deb")  # the same version again: prerm upgrade, postinst configure
    after = root.sh("tail -1 /etc/edge/edge.env; /opt/edge/venv/bin/edge-agent --version; "
                    "test -L /etc/systemd/system/multi-user.target.wants/edge-agent.service && echo enabled").stdout
    assert after.split() == ["MQTT_PASSWORD=s3cret", "edge-agent", _control(deb)["Version"].split("-")[0], "enabled"]

    gone = root.sh("dpkg -r edge >/dev/null; for p in /opt/edge/venv /usr/bin/edge-agent /etc/edge/edge.env "
                   "/var/lib/edge /usr/lib/systemd/system/edge-agent.service; do "
                   "if [ -e $p ] || [ -L $p ]; then echo present $p; else echo absent $p; fi; done").stdout
    assert gone.split("\n")[:5] == [
        "absent /opt/edge/venv", "absent /usr/bin/edge-agent", "present /etc/edge/edge.env",
        "present /var/lib/edge", "absent /usr/lib/systemd/system/edge-agent.service"]
    purged = root.sh("dpkg --purge edge >/dev/null; for p in /etc/edge /var/lib/edge /opt/edge; do "
                     "if [ -e $p ]; then echo present $p; else echo absent $p; fi; done; "
                     "dpkg -s edge >/dev/null 2>&1 && echo installed || echo not-installed").stdout
    assert purged.split("\n")[:4] == ["absent /etc/edge", "absent /var/lib/edge", "absent /opt/edge", "not-installed"]
