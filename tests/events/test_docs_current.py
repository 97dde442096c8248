"""docs/events.md is generated from the schemas; it must not drift from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_events_reference_is_current() -> None:
    out = subprocess.run([sys.executable, "-m", "edge.events.docs"], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout == (REPO / "docs" / "events.md").read_text(), "run: python -m edge.events.docs > docs/events.md"
