"""Uplink settings: MQTT broker, TLS, outbox (owned by the uplink stage)."""

from __future__ import annotations

import ipaddress
import os.path
import re
from typing import Any

from pydantic import field_validator, model_validator

from edge.config.base import Field, StrictModel

_LOCAL_HOSTS = {"localhost", "ip6-localhost"}
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,3}$")


def is_local_host(host: str) -> bool:
    """True for localhost and loopback addresses (where plaintext MQTT is acceptable)."""
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TlsConfig(StrictModel):
    """TLS towards the broker: the CA that signed the broker, and this box's client certificate."""

    ca_file: str = Field(..., description="PEM file of the CA that signed the broker's certificate.")
    cert_file: str | None = Field(None, description="PEM client certificate of this box (mutual TLS).")
    key_file: str | None = Field(None, description="PEM private key of the client certificate.")
    insecure_skip_verify: bool = Field(
        False, description="Do not check the broker's host name (testing only; the CA is still checked)."
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate and its key)")
        return self


class MqttConfig(StrictModel):
    """The MQTT 5 broker this box reports to."""

    host: str = Field(..., min_length=1, description="Broker host name or IP address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Broker port; default 8883 with TLS, 1883 without."
    )
    client_id: str | None = Field(None, description="MQTT client id; default edge-{site}-{device}.")
    username: str | None = Field(None, description="Broker user name; use ${ENV} substitution for secrets.")
    password: str | None = Field(
        None, description="Broker password; write ${MQTT_PASSWORD}, never a literal."
    )
    tls: TlsConfig | None = Field(None, description="TLS settings; required for a broker outside localhost.")
    allow_insecure: bool = Field(
        False, description="Allow plaintext MQTT to a broker outside localhost (not for production)."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval in seconds.")
    session_expiry_s: int = Field(
        86400, ge=60, description="MQTT 5 session expiry: how long the broker keeps this box's session."
    )
    inflight_max: int = Field(
        32, ge=1, le=1000, description="Most QoS 1 messages awaiting PUBACK at once (the in-flight window)."
    )
    backoff_min_s: float = Field(1.0, gt=0, description="First reconnect delay after the broker is lost.")
    backoff_max_s: float = Field(
        60.0, gt=0, description="Longest reconnect delay (jittered exponential backoff)."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="How long one connection attempt may take.")
    fallback_after_s: float = Field(
        120.0, gt=0, description="Broker unreachable this long: alarms go over the fallback link (modem)."
    )
    reconnect_window_s: float = Field(
        10.0,
        ge=0,
        description=(
            "After an established connection is lost, reconnect attempts go in rounds shared by every box that "
            "lost it at the same moment: the first round is this many seconds, each later one twice as wide "
            "(capped at backoff_max_s), one attempt at a random time per round. A broker coming back sees at "
            "most about N / reconnect_window_s connects per second from N boxes; choose N / (connects/s the "
            "broker accepts). 0 = plain jittered exponential backoff."
        ),
    )
    unrouted_retry_s: float = Field(
        15.0,
        ge=0,
        description=(
            "A message the broker acknowledges with 'no matching subscribers' (MQTT 5 reason 0x10: the platform's "
            "consumers are not subscribed, e.g. a broker restart that did not restore their shared subscriptions) "
            "stays in the outbox and is sent again after this many seconds. 0 deletes it like any acknowledged "
            "message (a lab broker with nobody listening)."
        ),
    )
    topic_aliases: bool = Field(
        True,
        description=(
            "Use MQTT 5 topic aliases (up to the broker's Topic Alias Maximum): a topic is sent in full once "
            "per connection, then as a 2-byte alias."
        ),
    )
    command_max_bytes: int = Field(
        65536,
        ge=256,
        le=1_048_576,
        description="Commands larger than this (bytes) are refused with an error reply; reload_config carries a whole config.",
    )
    command_burst: int = Field(
        20, ge=1, le=10_000, description="Most commands this box takes at once; more get a 'rate limited' reply."
    )
    command_rate_per_s: float = Field(
        5.0, gt=0, le=1000, description="Commands per second this box takes after a burst (token bucket refill)."
    )

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s: must be >= backoff_min_s")
        if self.tls is None and not self.allow_insecure and not is_local_host(self.host):
            raise ValueError(
                f"host: plaintext MQTT to {self.host!r} is refused; add a tls: section "
                "(ca_file, cert_file, key_file) or set allow_insecure: true for a lab broker"
            )
        if self.password is not None and self.username is None:
            raise ValueError("password: a password needs a username")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls is not None else 1883)


# Parts of a ``features`` record that ``uplink.features.omit`` may leave out (``interval_s``, the zone
# ids and each zone's ``kind`` always stay). Zone fields are written ``zones.<field>``.
FEATURE_TOP_PARTS = ("grid", "lines", "sensors")
FEATURE_ZONE_FIELDS = (
    "count", "count_mean", "count_max", "occupancy", "dwell_mean_s", "dwell_max_s",
    "density", "density_max", "los", "in", "out", "motion_energy",
)  # fmt: skip
FEATURE_OMITTABLE = (*FEATURE_TOP_PARTS, *(f"zones.{f}" for f in FEATURE_ZONE_FIELDS))


class FeatureUplinkConfig(StrictModel):
    """How ``features`` records travel: which parts are sent and whether unchanged ones are held back.
    Applied to the record after it is built, before it enters the outbox (it gets no ``seq`` when held back)."""

    omit: list[str] = Field(
        default_factory=list,
        description=(
            "Parts of each features record not sent: any of grid, lines, sensors, zones.count, "
            "zones.count_mean, zones.count_max, zones.occupancy, zones.dwell_mean_s, zones.dwell_max_s, "
            "zones.density, zones.density_max, zones.los, zones.in, zones.out, zones.motion_energy. "
            "The record lists what it left out in its 'omitted' field."
        ),
    )
    only_on_change: bool = Field(
        False,
        description=(
            "Hold back a features record whose content (all but interval_s) equals the last one sent for that "
            "camera; the next record sent says how many were held back ('unchanged_before')."
        ),
    )
    max_silence_s: float = Field(
        900.0,
        gt=0,
        description="With only_on_change, a record is still sent when the last one for that camera is this old (event time), so silence means a dead box, not a quiet street.",
    )

    @field_validator("omit")
    @classmethod
    def _omit(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if x not in FEATURE_OMITTABLE]
        if bad:
            raise ValueError(f"unknown feature part(s) {bad}; allowed: {', '.join(FEATURE_OMITTABLE)}")
        return v


class UplinkConfig(StrictModel):
    """Where events go. With no broker, events go to a JSONL file sink."""

    topic_prefix: str = Field(
        "edge", min_length=1, description="First topic level: {prefix}/{site}/{device}/..."
    )
    outbox_path: str = Field("/var/lib/edge/outbox.sqlite", description="SQLite outbox file (durable queue).")
    jsonl_path: str | None = Field(
        None, description="JSONL file sink: used instead of MQTT when no broker is configured, else a copy."
    )
    mqtt: MqttConfig | None = Field(
        None, description="The MQTT broker; absent = standalone with the JSONL sink."
    )
    outbox_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        description="Outbox size cap in bytes; keep it well below the free space (a full disk wedges SQLite).",
    )
    group_commit_s: float = Field(
        0.01,
        ge=0,
        le=5,
        description=(
            "Non-alarm writes wait at most this long to be committed together (alarms commit at once); "
            "larger = fewer fsyncs, but more latency and more exposure to a power cut."
        ),
    )

    features: FeatureUplinkConfig = Field(
        default_factory=FeatureUplinkConfig,
        description="Which parts of the features records are sent, and whether unchanged records are held back.",
    )
    compress: list[str] = Field(
        default_factory=lambda: ["features", "device_health"],
        description=(
            "Event kinds whose messages are zlib-compressed on the wire (MQTT 5 content type application/zlib; "
            "the outbox and the JSONL sink keep plain JSON). Feature and health records shrink 3-5x; [] sends "
            "everything as plain JSON for consumers that cannot inflate."
        ),
    )

    @field_validator("compress")
    @classmethod
    def _compress(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if not re.match(r"^[a-z][a-z0-9_]{0,63}$", k)]
        if bad:
            raise ValueError(f"{bad} are not event kinds (snake_case names such as features, device_health)")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX.match(v):
            raise ValueError(
                f"{v!r} is not a valid topic prefix: 1-4 levels of letters, digits, '-', '_', '.', "
                "separated by '/', without '+', '#' or a leading '/'"
            )
        return v

    @property
    def sink_path(self) -> str | None:
        """The JSONL sink in use: ``jsonl_path``, or with no broker ``events.jsonl`` next to the outbox."""
        if self.jsonl_path is not None:
            return self.jsonl_path
        if self.mqtt is None:
            return os.path.join(os.path.dirname(self.outbox_path) or ".", "events.jsonl")
        return None


def check_tls_files(cfg: Any) -> list[str]:
    """A semantic check for ``check-config``, ``run`` and ``reload_config`` (on the box): the TLS files
    named by ``uplink.mqtt.tls`` exist. Takes the SiteConfig; one line per missing file."""
    mqtt = cfg.uplink.mqtt
    tls = mqtt.tls if mqtt is not None else None
    if tls is None:
        return []
    problems: list[str] = []
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path is None:
            continue
        if not os.path.exists(path):
            problems.append(
                f"uplink.mqtt.tls.{key}: {path} does not exist; install the box's TLS files there or fix the path"
            )
        elif not os.path.isfile(path):
            problems.append(f"uplink.mqtt.tls.{key}: {path} is not a file; give the PEM file's path")
    return problems
