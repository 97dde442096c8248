"""``edge-agent verify`` and ``edge-agent keys``: check signed events, show and rotate the box's key.

    edge-agent keys show --config /etc/edge/site.yaml          # the public keys file a city registers
    edge-agent keys rotate --config /etc/edge/site.yaml        # new key; the old one stays listed (retired)
    edge-agent verify events.jsonl --keys public_keys.json [--evidence /var/lib/edge/evidence]
    edge-agent verify --mqtt broker:8883 --topic 'edge/#' --keys keys/ --tls-ca ca.pem ...

``verify`` prints one ``FAIL`` line per record that fails (and per evidence crop that does not
match the signed event citing it), then a summary. Exit code: 0 when every record verified,
1 when any failed (or nothing was read), 2 on a usage problem (keys file, broker options).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, EdgeError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check event signatures (a JSONL file or a live MQTT subscription) and evidence crops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", help="JSONL files of events (one edge.event/1 envelope per line)")
    p.add_argument(
        "--keys",
        action="append",
        required=True,
        metavar="FILE|DIR",
        help="a device's public_keys.json, or a directory of them (repeatable)",
    )
    p.add_argument("--evidence", metavar="DIR", help="also check the evidence crops the events cite, in DIR")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="subscribe to a broker instead of reading files")
    p.add_argument("--topic", default="edge/#", help="topic filter for --mqtt (default edge/#)")
    p.add_argument("--count", type=int, default=None, help="--mqtt: stop after this many messages")
    p.add_argument("--idle", type=float, default=30.0, help="--mqtt: stop after this many seconds without a message")
    p.add_argument("--tls-ca", help="--mqtt: CA certificate (PEM) of the broker; enables TLS")
    p.add_argument("--tls-cert", help="--mqtt: client certificate (PEM)")
    p.add_argument("--tls-key", help="--mqtt: client key (PEM)")
    p.add_argument("--username", help="--mqtt: user name; the password is read from $MQTT_PASSWORD")
    p.set_defaults(func=cmd_verify)

    k = subparsers.add_parser("keys", help="show or rotate this box's event signing key")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    show = ksub.add_parser("show", help="print public_keys.json (every key this box has used), creating the key on first use")
    show.add_argument("--config", required=True, help="site config YAML")
    show.add_argument("--pem", action="store_true", help="print the current public key as PEM instead")
    show.set_defaults(func=cmd_keys_show)
    rot = ksub.add_parser("rotate", help="make a new signing key; the old public key stays listed as retired")
    rot.add_argument("--config", required=True, help="site config YAML")
    rot.set_defaults(func=cmd_keys_rotate)


def _store(config: str) -> tuple[Any, Any]:
    from edge.config import load_config
    from edge.events.signing import KeyStore

    cfg = load_config(config)
    if not cfg.signing.enabled:
        raise ConfigError(f"{config}: signing.enabled is false: this box does not sign its events")
    key_dir = cfg.signing.resolved_key_dir(cfg.uplink.outbox_path)
    return cfg, KeyStore(key_dir, cfg.device_id, cfg.site_id)


def cmd_keys_show(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    cfg, store = _store(args.config)
    existed = store.public_path.exists() and (cfg.signing.key_file is not None or store.private_path.exists())
    signer = store.load_or_create(cfg.signing.key_file)
    if not existed:
        print(f"created signing key {signer.kid} in {store.dir}", file=sys.stderr)
    if args.pem:
        pem = signer.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        print(f"# device {cfg.device_id} key id {signer.kid}")
        print(pem.decode("ascii"), end="")
        return 0
    print(json.dumps(store.public_document(), indent=2, ensure_ascii=False))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    cfg, store = _store(args.config)
    if cfg.signing.key_file is not None:
        raise ConfigError(
            f"{args.config}: signing.key_file is set (a provisioned key): provision a new key file and restart; "
            "the box lists the new key and keeps the old one as retired"
        )
    old, new = store.rotate()
    print(f"device {cfg.device_id}: signing key {old or '(none)'} -> {new}; {store.public_path} lists both")
    print("restart the agent to sign with the new key; register the updated public keys file with the city")
    return 0


def _mqtt_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from edge.config.uplink import MqttConfig

    host, sep, port = str(args.mqtt).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--mqtt {args.mqtt!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    data: dict[str, Any] = {"host": host, "port": int(port)}
    if args.tls_ca:
        data["tls"] = {"ca_file": args.tls_ca, "cert_file": args.tls_cert, "key_file": args.tls_key}
    elif args.tls_cert or args.tls_key:
        raise ConfigError("--tls-cert/--tls-key need --tls-ca (the CA of the broker)")
    if args.username:
        data["username"] = args.username
        data["password"] = os.environ.get("MQTT_PASSWORD")
    try:
        return MqttConfig(**data)
    except ValidationError as exc:
        raise ConfigError(f"--mqtt: {exc.errors()[0]['msg']}") from None


def cmd_verify(args: argparse.Namespace) -> int:
    from edge.events.signing import KeyRing, SigningError, Verifier

    if not args.files and not args.mqtt:
        print("error: give JSONL files or --mqtt HOST:PORT", file=sys.stderr)
        return 2
    try:
        ring = KeyRing.from_files(args.keys)
    except SigningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.evidence and not Path(args.evidence).is_dir():
        print(f"error: --evidence {args.evidence}: not a directory", file=sys.stderr)
        return 2
    v = Verifier(ring, evidence_dir=args.evidence)
    for name in args.files:
        try:
            with open(name, "rb") as f:
                for i, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    for failure in v.check_text(line, f"{name}:{i}"):
                        print(failure.line(), flush=True)
        except OSError as exc:
            print(f"error: cannot read {name} ({exc.strerror})", file=sys.stderr)
            return 2
    if args.mqtt:
        from edge.uplink.mqtt import read_messages

        mcfg = _mqtt_config(args)
        n = [0]

        def on_message(topic: str, payload: bytes) -> None:
            n[0] += 1
            for failure in v.check_text(payload, f"message {n[0]} on {topic}", skip_non_events=True):
                print(failure.line(), flush=True)

        try:
            read_messages(
                mcfg,
                args.topic,
                on_message,
                client_id=f"edge-verify-{os.getpid()}",
                idle_timeout_s=args.idle,
                max_messages=args.count,
                on_subscribed=lambda: print(f"subscribed to {args.topic} on {args.mqtt}", file=sys.stderr, flush=True),
            )
        except EdgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print(v.summary())
            return 2
    print(v.summary())
    if v.records == 0:
        print("error: no records were read", file=sys.stderr)
        return 1
    return 0 if v.ok else 1
