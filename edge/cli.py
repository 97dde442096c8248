"""The ``edge-agent`` command. Only this module configures logging handlers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, TextIO

from edge import __version__, plugins
from edge.agent.runner import Agent
from edge.config import SemanticCheck, load_config
from edge.config.uplink import check_tls_files
from edge.errors import ConfigError, EdgeError
from edge.hardware import cli as hardware_cli
from edge.tools import cli as tools_cli
from edge.tools import livery as livery_cli
from edge.tools import privacy as privacy_cli
from edge.tools import verify as verify_cli
from edge.uplink import certs as certs_cli
from edge.vision import cli as vision_cli
from edge.vision.checks import check_models

log = logging.getLogger("edge.cli")

# Areas that add sub-commands through ``register(subparsers)``; plug-ins (``edge.commands`` entry
# points, e.g. ``demo`` from firmware_sim) add theirs after these.
_AREA_CLIS = (vision_cli, hardware_cli, tools_cli, verify_cli, privacy_cli, certs_cli, livery_cli)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# syslog priorities (sd-daemon(3)): journald reads a "<N>" prefix on each line of a service's stderr.
_JOURNAL_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


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


class _JournalFormatter(logging.Formatter):
    """Under systemd: every line starts with its syslog priority (``<3>`` error, ``<4>`` warning,
    ``<6>`` info, ``<7>`` debug), so ``journalctl -p warning`` and the journal's colours work.
    No timestamp: the journal stamps each line itself."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prio = _JOURNAL_PRIORITY.get(record.levelname, 6)
        return "\n".join(f"<{prio}>{line}" for line in self.inner.format(record).splitlines() or [""])


def under_journald(stream: Any = None) -> bool:
    """True when ``stream`` (default stderr) is the journal's stream socket: systemd sets
    ``JOURNAL_STREAM=<device>:<inode>`` of the socket it connected stdout/stderr to."""
    value = os.environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        dev, ino = (int(x) for x in value.split(":", 1))
        st = os.fstat((stream if stream is not None else sys.stderr).fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not the stream it was when the
    handler was made: a stream swapped out and closed later (a supervisor's redirect, a test's
    capture) must not turn every later log line into "I/O operation on closed file"."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """One stderr handler: plain text or JSON lines, with journald priorities under systemd.
    ``level`` must be one of LOG_LEVELS (the parser refuses anything else)."""
    name = level.upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level {level!r}: choose one of {', '.join(LOG_LEVELS)}")
    handler = _StderrHandler()
    journal = under_journald(sys.stderr)
    if json_lines:
        fmt: logging.Formatter = _JsonFormatter()
    elif journal:
        fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    else:
        fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(_JournalFormatter(fmt) if journal else fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, name))


def print_config_error(exc: ConfigError) -> None:
    for line in exc.problems:
        print(line, file=sys.stderr)


def config_checks(*, box_files: bool = True) -> list[SemanticCheck]:
    """Semantic checks that need other stages ("does this model exist?") or the box itself (its TLS
    files; skipped by ``check-config --off-box``)."""
    return [check_tls_files, check_models] if box_files else [check_models]


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.file, checks=config_checks(box_files=not args.off_box))
    except ConfigError as exc:
        print_config_error(exc)
        return 2
    print("OK")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    checks = config_checks()
    try:
        cfg = load_config(args.config, checks=checks)
    except ConfigError as exc:
        print_config_error(exc)
        return 2
    agent = Agent(cfg, config_path=args.config, config_checks=checks)
    agent.install_signal_handlers()
    return agent.run()


def _log_level(value: str) -> str:
    name = value.upper()
    if name not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a log level; choose one of {', '.join(LOG_LEVELS)}")
    return name


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--log-level`` and ``--log-json``: on the top-level parser with their defaults, and on every
    sub-command with SUPPRESS defaults, so ``edge-agent run --log-level DEBUG`` works too and a
    sub-command that does not repeat them does not reset what was given before it."""
    default: Any = "INFO" if top else argparse.SUPPRESS
    group = parser.add_argument_group("logging (before or after the sub-command)") if not top else parser
    group.add_argument(
        "--log-level",
        type=_log_level,
        default=default,
        metavar="LEVEL",
        help=f"{', '.join(LOG_LEVELS)} (default INFO)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="log JSON lines instead of plain text",
    )


def _describe(text: str) -> str:
    """A help line as a description: first letter up, a full stop, no reST markup."""
    text = text.replace("``", "").strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", ":", "!", "?")) else text + "."


def _finish_subcommands(parser: argparse.ArgumentParser) -> None:
    """Every sub-command (and sub-sub-command) gets a description (its help line when it has none),
    reST double backquotes are dropped from docstring descriptions, and the global options."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, sub in action.choices.items():
            if not sub.description and helps.get(name):
                sub.description = _describe(str(helps[name]))
            elif sub.description:
                sub.description = sub.description.replace("``", "")
            known = {opt for a in sub._actions for opt in a.option_strings}
            if "--log-level" not in known and "--log-json" not in known:
                _add_global_options(sub, top=False)
            _finish_subcommands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Street-level sensing agent: camera, detector, zone rules, durable MQTT uplink, "
        "and the field tools to commission and check a box. "
        "Run 'edge-agent COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run the agent until SIGINT/SIGTERM (or the end of a file source)",
        description="Run the agent with a site config: capture, detect, track, apply the zone rules and "
        "send events through the durable outbox, until SIGINT/SIGTERM or the end of a file source "
        "(exit 0). Under systemd it notifies READY=1 and feeds the watchdog while frames flow.",
    )
    p.add_argument("--config", required=True, help="site config YAML")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "check-config",
        help="validate a site config: prints OK or one line per problem",
        description="Validate a site config exactly as 'run' would load it. Prints OK (exit 0) or one "
        "line per problem naming its YAML path (exit 2), never a traceback.",
    )
    p.add_argument("file", help="site config YAML")
    p.add_argument(
        "--off-box", action="store_true", help="validating away from the box: skip checks of files only the box has (TLS)"
    )
    p.set_defaults(func=cmd_check_config)

    for area in _AREA_CLIS:
        area.register(sub)
    for mod in plugins.command_modules():
        mod.register(sub)
    _finish_subcommands(parser)
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
