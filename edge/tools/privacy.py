"""``edge-agent privacy --config FILE``: what leaves the box for this config, stated from the config.

It lists where data goes (broker, state topics, Home Assistant discovery, JSONL file, cellular fallback, metrics endpoint), every event
kind this config can emit with its payload fields (from the published schemas), and whether any
image can leave the box (evidence crops, the ``snapshot`` command, uploads). ``--json`` prints
the same statement as one JSON object. ``tests/tools/test_privacy.py`` asserts it for every
example config, and checks it against what the agent actually emitted on the synthetic street.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.config import SiteConfig

# Emitted whatever the config: lifecycle, health, per-camera features and camera loss.
ALWAYS = ("agent_status", "device_health", "features", "camera_status")
# Envelope members every message carries besides the payload.
ENVELOPE_FIELDS = (
    "schema", "event_id", "incident_id", "seq", "device_id", "site_id", "camera_id", "zone_id", "kind",
    "phase", "severity", "severity_reason", "ts", "started_ts", "clock", "model", "config_hash", "geo", "sig",
)  # fmt: skip


@dataclass
class PrivacyStatement:
    device_id: str
    destinations: list[str]
    kinds: dict[str, list[str]]  # kind -> payload fields
    envelope_fields: list[str]
    images_leave_box: bool
    image_paths: list[str]  # how an image can leave (empty when none can)
    evidence_on_box: bool
    evidence_retention: str | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def emitted_kinds(cfg: SiteConfig) -> list[str]:
    """Every event kind the agent can emit with this config."""
    kinds = set(ALWAYS)
    zone_kinds = {z.kind for cam in cfg.cameras for z in cam.zones}
    if any(cam.tamper.enabled for cam in cfg.cameras):
        kinds.add("camera_tamper")
    if "no_parking" in zone_kinds:
        kinds.add("parking_violation")
    if "bike_bay" in zone_kinds:
        kinds |= {"bike_bay_status", "bike_bay_overflow", "dispatch_task"}
    if "bike_watch" in zone_kinds:
        kinds.add("bike_outside_bay")
    if zone_kinds & {"bike_bay", "bike_watch"} and cfg.rules.bike.blacklist:
        kinds.add("blacklisted_bike")
    if "crowd" in zone_kinds:
        kinds |= {"crowd_density", "crowd_surge"}
    if any(cam.lines for cam in cfg.cameras):
        kinds.add("line_crossing")
    hw = cfg.hardware
    if hw.tamper_switch is not None:
        kinds.add("tamper")
    if hw.pir is not None and hw.pir.report_events:
        kinds.add("hardware_input")
    if hw.radar is not None or hw.gps is not None or hw.modem is not None:
        kinds.add("sensor_status")
    return sorted(kinds)


def payload_fields(kind: str) -> list[str]:
    from edge.events.schema import kind_schemas

    return sorted(kind_schemas()[kind].get("properties", {}))


def statement(cfg: SiteConfig) -> PrivacyStatement:
    up = cfg.uplink
    dest: list[str] = []
    if up.mqtt is not None:
        m = up.mqtt
        how = "TLS" + (" with a client certificate" if m.tls and m.tls.cert_file else "") if m.tls else "PLAINTEXT"
        dest.append(f"MQTT broker {m.host}:{m.effective_port} ({how}), topics {up.topic_prefix}/{cfg.site_id}/{cfg.device_id}/...")
    integ = cfg.integrations
    if integ.state_topics.enabled and up.mqtt is not None:
        dest.append(
            f"retained state topics {up.topic_prefix}/{cfg.site_id}/{cfg.device_id}/state/... on the same broker: per "
            "zone counts by class, occupancy, density, level of service; camera online and tamper; the enclosure door"
        )
    if integ.home_assistant.enabled and up.mqtt is not None:
        dest.append(
            f"Home Assistant discovery configs {integ.home_assistant.discovery_prefix}/<component>/{cfg.device_id}/... "
            "on the same broker: entity names, the site, device, camera and zone ids, no measurements"
        )
    if up.sink_path is not None:
        dest.append(f"JSONL file {up.sink_path} on the box" + (" (a copy of what is published)" if up.mqtt else ""))
    modem = cfg.hardware.modem
    if modem is not None and modem.fallback is not None:
        dest.append("cellular modem (BG96) while the broker is unreachable: alarms only (major/critical, tamper, open tasks)")
    if cfg.health.metrics.enabled:
        dest.append(
            f"Prometheus /metrics on {cfg.health.metrics.host}:{cfg.health.metrics.port} (loopback only): counters and gauges, no events"
        )
    ev = cfg.evidence
    paths: list[str] = []
    if ev.enabled and ev.upload and up.mqtt is not None:
        paths.append(
            "the snapshot command's reply carries a whole frame as JPEG (every tracked person pixelated) "
            "to whoever may send commands to this box"
        )
    notes = [
        "no raw frame is ever published; events carry counts, positions as fractions of the frame "
        "(box), tracker ids that are not linked to identities, and the box's own position (geo)",
        "features.grid is a coarse grid of person-seconds over the frame, not an image",
    ]
    if ev.enabled and ev.upload and up.mqtt is None:
        notes.append("evidence.upload is on but no broker is configured: no command can ask for an image")
    if ev.enabled:
        notes.append(
            f"evidence crops of violating vehicles (people pixelated) are kept on the box in {ev.path}; "
            "events carry only the file name and its SHA-256"
        )
    if cfg.signing.enabled:
        notes.append("every event is signed (sig): it proves the origin, it adds no personal data")
    kinds = {k: payload_fields(k) for k in emitted_kinds(cfg)}
    return PrivacyStatement(
        device_id=cfg.device_id,
        destinations=dest,
        kinds=kinds,
        envelope_fields=list(ENVELOPE_FIELDS if cfg.signing.enabled else ENVELOPE_FIELDS[:-1]),
        images_leave_box=bool(paths),
        image_paths=paths,
        evidence_on_box=ev.enabled,
        evidence_retention=f"{ev.retention_days:g} days, at most {ev.max_bytes} bytes" if ev.enabled else None,
        notes=notes,
    )


def render(st: PrivacyStatement) -> str:
    out = [f"What leaves box {st.device_id}:", "", "destinations:"]
    out += [f"  - {d}" for d in st.destinations] or ["  - none configured"]
    out += ["", f"images: {'CAN leave the box' if st.images_leave_box else 'none can leave the box'}"]
    out += [f"  - {p}" for p in st.image_paths]
    if st.evidence_on_box:
        out.append(f"  evidence crops kept on the box (retention {st.evidence_retention}); not uploaded by events")
    else:
        out.append("  evidence crops: off (evidence.enabled: false): no image is written or sent")
    out += ["", f"event kinds ({len(st.kinds)}), with their payload fields:"]
    for kind, fields in st.kinds.items():
        out.append(f"  {kind}: {', '.join(fields)}")
    out += ["", f"every message also carries: {', '.join(st.envelope_fields)}", "", "notes:"]
    out += [f"  - {n}" for n in st.notes]
    return "\n".join(out)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "privacy",
        help="print what leaves the box for a config: destinations, event kinds and fields, whether images can",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--json", action="store_true", help="print the statement as one JSON object")
    p.set_defaults(func=cmd_privacy)


def cmd_privacy(args: argparse.Namespace) -> int:
    from edge.config import load_config

    cfg = load_config(args.config)
    st = statement(cfg)
    if args.json:
        print(json.dumps(st.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(render(st))
    sys.stdout.flush()
    return 0
