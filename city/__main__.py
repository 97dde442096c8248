"""``python -m city consume|gaps|stats|report ...``: the reference consumer, its database reports and the
closed-loop figures."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys

from city.consumer import ConsumerConfig, serve, stats_of
from city.mqtt import BrokerAddress
from city.store import Store, StoreError, gap_report
from edge.tools import loops


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: write HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m city", description="The city side of an edge fleet.")
    ap.add_argument("--log-level", default="INFO")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    c = sub.add_parser("consume", help="consume the fleet's events into a database (shared subscription)")
    c.add_argument("--broker", type=_broker, required=True, help="HOST:PORT of the MQTT 5 broker")
    c.add_argument("--group", required=True, help="shared-subscription group: instances in one group split the load")
    c.add_argument("--db", required=True, help="sqlite:///path.db or postgresql://user@host/db")
    c.add_argument(
        "--client-id",
        help="MQTT client id of this instance; keep it fixed across restarts (its session holds the messages "
        "routed to it while it was down). Default city-GROUP-HOSTNAME",
    )
    c.add_argument("--prefix", default="edge", help="the boxes' uplink.topic_prefix (default edge)")
    c.add_argument("--username", help="broker user name (the password comes from $CITY_MQTT_PASSWORD)")
    c.add_argument("--ca-file", help="CA of the broker (TLS)")
    c.add_argument("--cert-file", help="this consumer's client certificate (mutual TLS)")
    c.add_argument("--key-file", help="its private key")
    c.add_argument("--no-validate", action="store_true", help="skip the JSON Schema check of each event")
    c.add_argument("--no-ack-tasks", action="store_true", help="do not acknowledge dispatch tasks to the boxes")
    c.add_argument("--acked-by", default="", help="the 'by' of ack_task commands (default city:GROUP)")
    c.add_argument(
        "--reply-timeout", type=float, default=60.0,
        help="resend a command the box has not answered after this many seconds (default 60; at most 10 tries)",
    )
    for name, helptext in (("gaps", "open seq gaps per device and what explains them"), ("stats", "totals")):
        g = sub.add_parser(name, help=helptext)
        g.add_argument("--db", required=True, help="sqlite:///path.db or postgresql://user@host/db")
    loops.register(sub)  # report: the closed loop in figures (also `edge-agent report`)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.cmd is None:
        ap.print_help()
        return 2
    if args.cmd == "report":
        return int(args.func(args))
    try:
        if args.cmd == "consume":
            host, port = args.broker
            broker = BrokerAddress(
                host, port, username=args.username, password=os.environ.get("CITY_MQTT_PASSWORD"),
                ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
            )  # fmt: skip
            cfg = ConsumerConfig(
                broker=broker, group=args.group, db_url=args.db,
                client_id=args.client_id or f"city-{args.group}-{socket.gethostname()}", prefix=args.prefix,
                validate=not args.no_validate, ack_tasks=not args.no_ack_tasks, acked_by=args.acked_by,
                reply_timeout_s=args.reply_timeout,
            )  # fmt: skip
            return serve(cfg)
        store = Store(args.db)
        out = gap_report(store) if args.cmd == "gaps" else stats_of(store)
        print(json.dumps(out, indent=1))
        return 0
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
