"""The ``edge-agent`` command line: descriptions, global options anywhere, refused values, journald."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli import build_parser, main, setup_logging, under_journald

COMMANDS = ("run", "check-config", "doctor", "replay", "calibrate", "bench", "demo")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_a_description(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, command)
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: edge-agent {command}")
    description = rest.split("\n\n")[0]
    # A sentence or more of prose before the argument list, not the argument list itself.
    assert not description.startswith(("options:", "positional arguments:")), text
    assert len(description.split()) >= 6, description
    assert "``" not in text  # no reST markup from a docstring
    assert "--log-level" in text  # the global options are listed on every sub-command


def test_demo_help_is_not_its_docstring(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "demo")
    assert "entry point" not in text and "firmware_sim" not in text.split("options:")[0]
    assert "synthetic street" in text


def test_every_parser_in_the_tree_has_a_description() -> None:
    import argparse

    missing: list[str] = []

    def walk(p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if not sub.description:
                        missing.append(sub.prog)
                    walk(sub)

    walk(build_parser())
    assert missing == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "DEBUG", "check-config", "{cfg}"],
        ["check-config", "{cfg}", "--log-level", "DEBUG"],
        ["check-config", "--log-level", "debug", "{cfg}"],
    ],
)
def test_log_level_before_or_after_the_subcommand(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(REPO / "configs" / "dev-sim.yaml")
    assert main([a.replace("{cfg}", cfg) for a in argv]) == 0
    assert capsys.readouterr().out.strip() == "OK"
    assert logging.getLogger().level == logging.DEBUG


def test_a_level_given_before_is_not_reset_by_the_subcommand() -> None:
    args = build_parser().parse_args(["--log-level", "ERROR", "--log-json", "check-config", "x.yaml"])
    assert (args.log_level, args.log_json) == ("ERROR", True)
    args = build_parser().parse_args(["check-config", "x.yaml"])
    assert (args.log_level, args.log_json) == ("INFO", False)
    args = build_parser().parse_args(["check-config", "x.yaml", "--log-json"])
    assert args.log_json is True


@pytest.mark.parametrize(
    "argv", [["--log-level", "LOUD", "run", "--config", "x"], ["run", "--config", "x", "--log-level", "LOUD"]]
)
def test_a_bad_log_level_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'LOUD' is not a log level" in err and "DEBUG, INFO, WARNING, ERROR" in err


def test_setup_logging_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match="LOUD"):
        setup_logging("LOUD")


def test_journald_gets_a_priority_on_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "stderr.log"
    with log_file.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journald(stream)
        setup_logging("DEBUG")
        log = logging.getLogger("edge.test")
        log.error("camera=%s lost", "cam0")
        log.warning("slow")
        log.info("started")
        log.debug("detail")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("step failed")
        logging.getLogger().handlers[0].flush()
    lines = log_file.read_text().splitlines()
    assert lines[:4] == [
        "<3>ERROR edge.test: camera=cam0 lost",
        "<4>WARNING edge.test: slow",
        "<6>INFO edge.test: started",
        "<7>DEBUG edge.test: detail",
    ]
    # A traceback stays at the record's priority on each of its lines (journald splits on newlines).
    assert lines[4] == "<3>ERROR edge.test: step failed"
    assert len(lines) > 6 and all(line.startswith("<3>") for line in lines[4:])
    assert lines[-1] == "<3>RuntimeError: boom"


def test_no_journal_prefix_when_stderr_is_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "a.log").open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # inherited from a parent: not this stream
        assert not under_journald(stream)
        setup_logging("INFO")
        logging.getLogger("edge.test").error("x")
        logging.getLogger().handlers[0].flush()
    text = (tmp_path / "a.log").read_text()
    assert not text.startswith("<") and " ERROR   edge.test: x" in text


def test_logging_follows_stderr_after_the_stream_it_started_on_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler writes to the current sys.stderr: once the stream logging was set up on is gone
    and closed, a log line goes to the new one instead of failing with "I/O operation on closed file"."""
    with (tmp_path / "first.log").open("w") as first:
        monkeypatch.setattr(sys, "stderr", first)
        setup_logging("INFO")
        logging.getLogger("edge.test").warning("on the first stream")
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("edge.test").warning("on the second stream")
    assert "on the first stream" in (tmp_path / "first.log").read_text()
    out = second.getvalue()
    assert "on the second stream" in out and "Logging error" not in out and "closed file" not in out


def test_journald_priorities_in_a_fresh_process(tmp_path: Path) -> None:
    """A process whose JOURNAL_STREAM names its own stderr (as systemd sets it) logs a warning at <4>."""
    err_file = tmp_path / "err.log"
    with err_file.open("w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        code = (
            "import logging, edge.cli as c; c.setup_logging('INFO'); "
            "logging.getLogger('edge.agent').warning('camera=cam0 offline')"
        )
        subprocess.run([sys.executable, "-c", code], stderr=err, env=env, check=True, cwd=REPO)
    assert err_file.read_text() == "<4>WARNING edge.agent: camera=cam0 offline\n"
