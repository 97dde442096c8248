"""``edge-agent doctor``: a field technician's self-test of one box.

Each check returns a ``CheckResult`` (pass / warn / fail, a detail and, when not passing, a hint).
Other stages' probes are imported lazily inside their check, so a missing or broken module becomes
a "fail" row naming the import error instead of a crash.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge.config.hardware import GpsConfig, InputLineConfig, ModemConfig, RadarConfig
from edge.config.site import SiteConfig
from edge.errors import EdgeError, HardwareError

log = logging.getLogger(__name__)
Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    hint: str = ""
    essential: bool = True


def _guard(name: str, fn: Callable[[], CheckResult], hint: str, essential: bool = True) -> CheckResult:
    try:
        return fn()
    except ImportError as exc:
        return CheckResult(
            name,
            "fail",
            f"cannot import the probe: {exc}",
            "this build lacks the module; reinstall edge",
            essential,
        )
    except (EdgeError, OSError, ValueError, TimeoutError) as exc:
        return CheckResult(name, "fail", str(exc), hint, essential)
    except Exception as exc:  # a doctor must report, not crash
        log.debug("check %s crashed", name, exc_info=True)
        return CheckResult(name, "fail", f"{type(exc).__name__}: {exc}", hint, essential)


# -- camera, model, broker (other stages' probes) -----------------------------------------------
def check_camera(cfg: SiteConfig, timeout_s: float) -> list[CheckResult]:
    out = []
    for cam in cfg.cameras:

        def run(cam: Any = cam) -> CheckResult:
            from edge.capture import probe_camera

            w, h = probe_camera(cam, timeout_s)
            return CheckResult(f"camera {cam.id}", "pass", f"frame {w}x{h} from {cam.source}")

        out.append(
            _guard(
                f"camera {cam.id}",
                run,
                "check the camera cable/power, the URL and credentials in cameras[].source",
            )
        )
    return out


def check_models(cfg: SiteConfig) -> list[CheckResult]:
    out = []
    for cam in cfg.cameras:
        if cam.model == "motion":
            out.append(CheckResult(f"model {cam.id}", "pass", "motion backend (no model file)"))
            continue

        def run(cam: Any = cam) -> CheckResult:
            from edge.vision.manifest import load_manifest, resolve_model_file

            manifest = load_manifest(cam.model)
            path = resolve_model_file(manifest)
            sha = getattr(manifest, "sha256", "") or ""
            return CheckResult(f"model {cam.id}", "pass", f"{cam.model}: {path} sha256 {sha[:12]} ok")

        out.append(
            _guard(
                f"model {cam.id}",
                run,
                "copy the weights named in the manifest to EDGE_MODEL_PATH; a sha256 mismatch means a corrupt or wrong file",
            )
        )
    return out


def check_broker(cfg: SiteConfig, timeout_s: float) -> CheckResult:
    if getattr(cfg.uplink, "mqtt", None) is None:
        return CheckResult(
            "broker",
            "warn",
            "no broker configured: events go to the local JSONL sink only",
            "add uplink.mqtt to send events upstream",
            essential=False,
        )

    def run() -> CheckResult:
        from edge.uplink.mqtt import probe_broker

        probe_broker(cfg.uplink, cfg.device_id, cfg.site_id, timeout_s)
        m = cfg.uplink.mqtt  # type: ignore[attr-defined]
        return CheckResult(
            "broker", "pass", f"{getattr(m, 'host', '?')}: connected, test publish acknowledged"
        )

    return _guard(
        "broker",
        run,
        "check uplink.mqtt host/port, the CA and client certificate files (and their expiry), and the clock",
    )


def check_disk(cfg: SiteConfig) -> CheckResult:
    path = Path(cfg.uplink.outbox_path).expanduser().resolve().parent
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 1e6
    need = cfg.hardware.disk_min_free_mb
    detail = f"{free_mb:.0f} MB free at {probe}"
    if free_mb < need:
        return CheckResult(
            "outbox disk",
            "fail",
            detail + f" (< {need:.0f} MB)",
            "free space on the SD card or move uplink.outbox_path",
        )
    if free_mb < 2 * need:
        return CheckResult(
            "outbox disk", "warn", detail + f" (< {2 * need:.0f} MB)", "space is getting low", essential=False
        )
    return CheckResult("outbox disk", "pass", detail)


# -- GPIO -----------------------------------------------------------------------------------------
def check_gpio(cfg: SiteConfig, pin_factory: Any = None) -> list[CheckResult]:
    lines = cfg.hardware.gpio_lines()
    if not lines:
        return []
    try:
        from edge.hardware import pins

        factory = pin_factory if pin_factory is not None else pins.make_pin_factory(cfg.hardware.pin_factory)
    except (ImportError, HardwareError) as exc:
        return [
            CheckResult(
                f"gpio {n}",
                "fail",
                f"no pin factory: {exc}",
                "install python3-lgpio, or pin_factory: mock on a simulated box",
            )
            for n in lines
        ]
    out = []
    for name, lc in lines.items():

        def run(name: str = name, lc: Any = lc) -> CheckResult:
            if isinstance(lc, InputLineConfig):
                line = pins.InputLine(name, lc, factory)
                try:
                    return CheckResult(
                        f"gpio {name}",
                        "pass",
                        f"GPIO{lc.pin} reads {'active' if line.active else 'inactive'}",
                    )
                finally:
                    line.close()
            o = pins.OutputLine(name, lc, factory)
            try:
                o.set(True)
                on = o.is_on
                time.sleep(0.05)
                o.set(False)
                if not on or o.is_on:
                    raise HardwareError(f"GPIO{lc.pin} did not follow the pulse")
                return CheckResult(f"gpio {name}", "pass", f"GPIO{lc.pin} pulsed")
            finally:
                o.close()

        out.append(
            _guard(
                f"gpio {name}",
                run,
                "check the pin number in hardware config and that no other program holds the line",
            )
        )
    return out


# -- serial devices -------------------------------------------------------------------------------
def check_radar(rc: RadarConfig, timeout_s: float) -> CheckResult:
    from edge.hardware.devices import RadarDevice

    dev = RadarDevice(rc, reconnect_min_s=timeout_s, reconnect_max_s=timeout_s)
    dev.start()
    try:
        if not dev.wait_connected(timeout_s):
            return CheckResult(
                "radar",
                "fail",
                dev.last_error or f"cannot open {rc.url}",
                "check the radar's UART wiring (TX/RX crossed?) and the port in hardware.radar.url",
            )
        fw = dev.wait_firmware(timeout_s)
        if fw is None:
            return CheckResult(
                "radar",
                "fail",
                f"{rc.url} open but no firmware-version ACK in {timeout_s:.0f}s",
                f"wrong baud rate? LD2410 ships at 256000 (configured {rc.baudrate}); check power",
            )
        deadline = time.monotonic() + timeout_s
        while dev.state is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if dev.state is None:
            return CheckResult(
                "radar",
                "warn",
                f"firmware {fw} but no report frames",
                "the radar may be stuck in configuration mode; power-cycle it",
                essential=False,
            )
        return CheckResult(
            "radar",
            "pass",
            f"firmware {fw}, reports ok, presence={dev.state.report.presence}, rejected={dev.decoder.rejected}",
        )
    finally:
        dev.stop()


def check_gps(gc: GpsConfig, timeout_s: float) -> CheckResult:
    from edge.hardware.devices import GpsDevice

    dev = GpsDevice(gc, reconnect_min_s=timeout_s, reconnect_max_s=timeout_s)
    dev.start()
    try:
        if not dev.wait_connected(timeout_s):
            return CheckResult(
                "gps",
                "fail",
                dev.last_error or f"cannot open {gc.url}",
                "check the GPS UART wiring and hardware.gps.url",
            )
        deadline = time.monotonic() + max(timeout_s, 2.5)  # sentences come once a second
        while time.monotonic() < deadline and not (dev.decoder.decoded >= 2 and dev.fresh_fix()):
            time.sleep(0.05)
        if dev.decoder.decoded == 0:
            return CheckResult(
                "gps",
                "fail",
                f"no valid NMEA sentences from {gc.url} (rejected {dev.decoder.rejected})",
                f"wrong baud rate? most receivers use 9600 (configured {gc.baudrate})",
            )
        fix = dev.fresh_fix()
        if fix is None:
            return CheckResult(
                "gps",
                "warn",
                f"{dev.decoder.decoded} sentences, no fix yet",
                "give the antenna a clear view of the sky; a cold start takes minutes",
                essential=False,
            )
        return CheckResult("gps", "pass", f"fix {fix.lat:.5f},{fix.lon:.5f} sats={fix.satellites}")
    finally:
        dev.stop()


def check_modem(mc: ModemConfig, timeout_s: float) -> CheckResult:
    from edge.hardware.codecs import at
    from edge.hardware.modem import ModemDevice

    dev = ModemDevice(
        mc.model_copy(update={"poll_interval_s": 3600.0}),
        reconnect_min_s=timeout_s,
        reconnect_max_s=timeout_s,
    )
    dev.start()
    try:
        if not dev.wait_connected(timeout_s):
            return CheckResult(
                "modem",
                "fail",
                dev.last_error or f"cannot open {mc.url}",
                "check the modem's USB/UART cable, power key and hardware.modem.url",
            )
        try:
            dev.command("AT", timeout_s=timeout_s)
        except HardwareError as exc:
            return CheckResult(
                "modem",
                "fail",
                f"no answer to AT: {exc}",
                "the modem may be off (press PWRKEY) or at another baud rate",
            )
        try:
            dev.refresh()
        except HardwareError as exc:
            return CheckResult(
                "modem", "fail", f"AT ok, but {exc}", "SIM inserted and unlocked? check AT+CPIN?"
            )
        csq = dev.rssi if dev.rssi is not None else 99
        dbm = at.csq_to_dbm(csq)
        reg = at.REG_STATES.get(dev.reg_stat if dev.reg_stat is not None else 4, "unknown")
        detail = f"AT ok, CSQ {csq} ({'unknown' if dbm is None else f'{dbm} dBm'}), {reg}"
        if not at.registered(dev.reg_stat):
            hint = (
                "registration denied: check the SIM's data plan / APN"
                if dev.reg_stat == 3
                else "not registered yet: check the antenna and coverage"
            )
            return CheckResult("modem", "warn", detail, hint, essential=False)
        if dbm is None or dbm < -105:
            return CheckResult(
                "modem", "warn", detail, "weak signal: move or replace the antenna", essential=False
            )
        return CheckResult("modem", "pass", detail)
    finally:
        dev.stop()


def check_clock(cfg: SiteConfig, ntp: Callable[[], bool | None] | None = None) -> CheckResult:
    from edge.hardware.clock import ntp_synced

    synced = (ntp or ntp_synced)()
    if synced:
        return CheckResult("clock", "pass", "system clock NTP-synchronised")
    via = " (GPS configured: events will carry GPS time)" if cfg.hardware.gps else ""
    return CheckResult(
        "clock",
        "warn",
        ("not NTP-synchronised" if synced is False else "NTP status unknown") + via,
        "enable systemd-timesyncd / chrony and allow UDP 123, or fit a GPS",
        essential=False,
    )


# -- the whole run --------------------------------------------------------------------------------
def run_doctor(
    cfg: SiteConfig,
    *,
    timeout_s: float = 5.0,
    pin_factory: Any = None,
    ntp: Callable[[], bool | None] | None = None,
) -> list[CheckResult]:
    results: list[CheckResult] = []
    results += check_camera(cfg, timeout_s)
    results += check_models(cfg)
    hw = cfg.hardware
    serial_jobs: list[tuple[str, Callable[[], CheckResult]]] = []
    if hw.radar:
        serial_jobs.append(("radar", lambda: check_radar(hw.radar, timeout_s)))  # type: ignore[arg-type]
    if hw.gps:
        serial_jobs.append(("gps", lambda: check_gps(hw.gps, timeout_s)))  # type: ignore[arg-type]
    if hw.modem:
        serial_jobs.append(("modem", lambda: check_modem(hw.modem, timeout_s)))  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=4) as pool:
        broker = pool.submit(check_broker, cfg, timeout_s)
        serial = [(n, pool.submit(_guard, n, fn, "check the device and its config")) for n, fn in serial_jobs]
        results.append(check_disk(cfg))
        results += check_gpio(cfg, pin_factory)
        results.append(broker.result())
        results += [f.result() for _, f in serial]
    results.append(check_clock(cfg, ntp))
    return results


def exit_code(results: list[CheckResult]) -> int:
    """1 if anything essential failed, else 0 (warnings do not fail the box)."""
    return 1 if any(r.status == "fail" and r.essential for r in results) else 0


def format_table(results: list[CheckResult]) -> str:
    w = max([len(r.name) for r in results] + [5])
    mark = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
    lines = [f"{'CHECK':<{w}}  STATUS  DETAIL", f"{'-' * w}  ------  {'-' * 40}"]
    for r in results:
        lines.append(f"{r.name:<{w}}  {mark[r.status]:<6}  {r.detail}")
        if r.status != "pass" and r.hint:
            lines.append(f"{'':<{w}}  {'':<6}  hint: {r.hint}")
    n_fail = sum(r.status == "fail" for r in results)
    n_warn = sum(r.status == "warn" for r in results)
    verdict = "FAILED" if exit_code(results) else "OK"
    lines.append(f"\n{verdict}: {len(results)} checks, {n_fail} failed, {n_warn} warnings")
    return "\n".join(lines)
