"""The ``edge-agent`` command. Only this module configures logging handlers."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from edge import __version__, plugins
from edge.errors import ConfigError, EdgeError
from edge.hardware import cli as hardware_cli
from edge.tools import cli as tools_cli
from edge.tools import livery as livery_cli
from edge.tools import privacy as privacy_cli
from edge.tools import verify as verify_cli
from edge.vision import cli as vision_cli

log = logging.getLogger("edge.cli")

# Areas that add sub-commands through ``register(subparsers)``; plug-ins (``edge.commands`` entry
# points, e.g. ``demo`` from firmware_sim) add theirs after these.
_AREA_CLIS = (vision_cli, hardware_cli, tools_cli, verify_cli, privacy_cli, livery_cli)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def print_config_error(exc: ConfigError) -> None:
    for line in exc.problems:
        print(line, file=sys.stderr)


def _register_config_checks(*, box_files: bool = True) -> None:
    """Semantic checks that need other stages (e.g. 'does this model exist?') or the box itself
    (its TLS files; skipped by ``check-config --off-box``)."""
    from edge.config import register_check
    from edge.config.uplink import check_tls_files

    if box_files:
        register_check(check_tls_files)
    try:
        from edge.vision.checks import check_models
    except ImportError:
        return
    register_check(check_models)


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.config import load_config

    _register_config_checks(box_files=not args.off_box)
    try:
        load_config(args.file)
    except ConfigError as exc:
        print_config_error(exc)
        return 2
    print("OK")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.config import load_config

    _register_config_checks()
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print_config_error(exc)
        return 2
    from edge.agent.runner import Agent

    agent = Agent(cfg, config_path=args.config)
    agent.install_signal_handlers()
    return agent.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Street-level sensing agent.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of plain text")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent until SIGINT/SIGTERM (or the end of a file source)")
    p.add_argument("--config", required=True, help="site config YAML")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a site config: prints OK or one line per problem")
    p.add_argument("file", help="site config YAML")
    p.add_argument(
        "--off-box", action="store_true", help="validating away from the box: skip checks of files only the box has (TLS)"
    )
    p.set_defaults(func=cmd_check_config)

    for area in _AREA_CLIS:
        area.register(sub)
    for mod in plugins.command_modules():
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_json)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print_config_error(exc)
        return 2
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
