"""Argument parsing for the radar, gps, modem and gpio simulators."""

from __future__ import annotations

import argparse
import time
from typing import Any

from firmware_sim.base import load_scenario
from firmware_sim.transport import SimServer


def _transport_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT (agent URL socket://127.0.0.1:PORT)"
    )
    g.add_argument("--pty", action="store_true", help="open a pseudo-terminal and print its path")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on with --tcp")
    p.add_argument("--scenario", help="scenario YAML file or bundled name (see firmware_sim/scenarios)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="scenario time runs this many times faster than real time"
    )


def _serve(sim: Any, args: argparse.Namespace) -> int:
    from firmware_sim.__main__ import serve_forever

    server = SimServer(
        sim,
        port=args.tcp if args.tcp is not None else 0,
        pty=bool(args.pty),
        host=args.host,
        speed=args.speed,
    )
    return serve_forever(server)


def cmd_radar(args: argparse.Namespace) -> int:
    from firmware_sim.radar import FRAME_FAULTS, RadarSim

    faults = tuple(args.faults.split(",")) if args.faults else FRAME_FAULTS
    sim = RadarSim(
        load_scenario(args.scenario, "radar"), fault_rate=args.fault_rate, faults=faults, seed=args.seed
    )
    return _serve(sim, args)


def cmd_gps(args: argparse.Namespace) -> int:
    from firmware_sim.gps import GpsSim

    return _serve(
        GpsSim(load_scenario(args.scenario, "gps"), fault_rate=args.fault_rate, seed=args.seed), args
    )


def cmd_modem(args: argparse.Namespace) -> int:
    from firmware_sim.modem import ModemSim

    return _serve(ModemSim(load_scenario(args.scenario, "modem"), record=args.record), args)


def cmd_gpio(args: argparse.Namespace) -> int:
    """Dry-run a GPIO scenario against a MockFactory and print each pin change."""
    from edge.hardware.pins import MockFactory
    from firmware_sim.gpio import GpioScenarioDriver

    drv = GpioScenarioDriver(MockFactory(), args.scenario)
    t0 = time.monotonic()
    while not drv.finished:
        t = (time.monotonic() - t0) * args.speed if args.realtime else float("inf")
        for s in drv.advance(t):
            print(f"t={s.at_s:8.2f}s GPIO{s.pin} -> {'high' if s.high else 'low'}", flush=True)
        if args.realtime:
            time.sleep(0.01)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("radar", help="HLK-LD2410 presence radar")
    _transport_args(p)
    p.add_argument("--fault-rate", type=float, default=0.0, help="fraction of frames sent corrupted (0..1)")
    p.add_argument("--faults", help="comma list of truncate,bad_tail,bad_marker,bad_length,garbage")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_radar)

    p = sub.add_parser("gps", help="NMEA 0183 GPS (RMC + GGA)")
    _transport_args(p)
    p.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of sentences sent corrupted (0..1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_gps)

    p = sub.add_parser("modem", help="Quectel BG96 cellular modem (AT commands, MQTT)")
    _transport_args(p)
    p.add_argument("--record", help="append every AT+QMTPUB message to this JSONL file")
    p.set_defaults(func=cmd_modem)

    p = sub.add_parser("gpio", help="dry-run a GPIO scenario on a MockFactory")
    p.add_argument("scenario", help="scenario YAML file or bundled name")
    p.add_argument("--realtime", action="store_true", help="follow the timeline in real time")
    p.add_argument("--speed", type=float, default=1.0)
    p.set_defaults(func=cmd_gpio)
