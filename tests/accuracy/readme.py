"""The README's accuracy table, read back so the tests hold the code to the figures it publishes.

A row is ``| use case | labelled set | command | pipeline | bare detector |``; the command names a spec
under ``tests/accuracy/sets/``. Figures in the last two cells are written as ``<name> <number>`` with the
names below (``MAE 3.60``, ``per-frame MAE 0.01``, ``recall 1.00``, ``shared accuracy 0.92``, ``private as
shared 0`` ...); anything else in the cell is prose. One spec may have several rows (the bike set: its count and
its operators); ``row_for`` tells them apart by use case or by the figure the row publishes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_FIGURE = re.compile(
    r"(per-frame MAE|line MAE|MAE|recall|precision|shared accuracy|private as shared|accuracy)\s+(-?[0-9]+(?:\.[0-9]+)?)"
)
_SPEC = re.compile(r"tests/accuracy/sets/[\w.-]+\.yaml")


@dataclass(frozen=True)
class AccuracyRow:
    use_case: str
    spec: str  # tests/accuracy/sets/<name>.yaml
    command: str
    pipeline: dict[str, float]
    bare: dict[str, float]


def figures(cell: str) -> dict[str, float]:
    return {name: float(value) for name, value in _FIGURE.findall(cell)}


def accuracy_rows(readme: Path = REPO / "README.md") -> list[AccuracyRow]:
    """Every row of the README's "Accuracy" section whose command runs a spec of tests/accuracy/sets."""
    text = readme.read_text(encoding="utf-8")
    start = text.find("\n## Accuracy")
    if start < 0:
        return []
    end = text.find("\n## ", start + 5)
    rows: list[AccuracyRow] = []
    for line in text[start : end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not _SPEC.search(cells[2]):
            continue
        rows.append(
            AccuracyRow(
                use_case=cells[0],
                spec=_SPEC.search(cells[2]).group(0),  # type: ignore[union-attr]
                command=cells[2].strip("`"),
                pipeline=figures(cells[3]),
                bare=figures(cells[4]),
            )
        )
    return rows


def row_for(
    spec: str, *, use_case: str | None = None, figure: str | None = None, readme: Path = REPO / "README.md"
) -> AccuracyRow:
    """The README row whose command runs ``spec`` (a path under tests/accuracy/sets/); with several rows for
    the spec, the one whose use case contains ``use_case`` and/or whose pipeline cell publishes ``figure``."""
    found = [r for r in accuracy_rows(readme) if r.spec == spec]
    if use_case is not None:
        found = [r for r in found if use_case in r.use_case]
    if figure is not None:
        found = [r for r in found if figure in r.pipeline]
    which = f"{spec}" + (f" (use case ~ {use_case!r})" if use_case else "") + (f" (figure {figure!r})" if figure else "")
    assert found, f"README.md's Accuracy table has no row running {which}"
    assert len(found) == 1, f"README.md's Accuracy table has {len(found)} rows running {which}: name the use case or figure"
    return found[0]
