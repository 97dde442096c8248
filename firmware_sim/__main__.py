"""``python -m firmware_sim radar|gps|modem|gpio|fleet ...`` (and ``street`` when firmware_sim.street has a cli)."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

# sub-command name -> module with ``register(subparsers)``; missing modules are skipped so the
# synthetic street (engineer F1's firmware_sim.street.cli) plugs in when present.
SUBCOMMANDS: dict[str, str] = {
    "radar": "firmware_sim.cli",
    "gps": "firmware_sim.cli",
    "modem": "firmware_sim.cli",
    "gpio": "firmware_sim.cli",
    "street": "firmware_sim.street.cli",
    "fleet": "firmware_sim.fleet",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim", description="Simulated field devices for edge."
    )
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="device", metavar="DEVICE")
    done: set[str] = set()
    for mod_name in SUBCOMMANDS.values():
        if mod_name in done:
            continue
        done.add(mod_name)
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            if exc.name and (exc.name == mod_name or mod_name.startswith(exc.name + ".")):
                continue
            raise
        register: Callable[[Any], None] | None = getattr(mod, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args))


def _control(server: Any) -> None:
    """Faults on demand from stdin: ``truncate 50``, ``garbage 3``, ``disconnect``, ``urc +QMTSTAT: 0,1``."""
    for raw in sys.stdin:
        words = raw.split()
        if not words:
            continue
        try:
            if words[0] == "urc" and hasattr(server.sim, "push_urc"):
                server.sim.push_urc(raw.strip()[4:])
            elif hasattr(server.sim, "inject"):
                server.sim.inject(words[0], int(words[1]) if len(words) > 1 else 1)
            else:
                raise ValueError("this device takes no faults")
            print(f"ok {raw.strip()}", flush=True)
        except (ValueError, IndexError) as exc:
            print(f"error {exc}", flush=True)


def serve_forever(server: Any) -> int:
    """Block until SIGINT/SIGTERM, then stop ``server``. Lines on stdin inject faults."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"listening {server.url}", flush=True)
    threading.Thread(target=_control, args=(server,), name="sim-control", daemon=True).start()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
