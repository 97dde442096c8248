"""The labelled-set spec ``edge-agent eval`` reads: media, the site config to run and the truth.

```yaml
name: crowd-photos-dev
description: free text
config: crowd-photos.site.yaml        # site config, path relative to this spec file
media_root: ${EDGE_ASSETS}            # optional; ${VAR} expanded; media paths are relative to it
defaults: {camera: cam0, hold_s: 8}   # optional defaults for every case
cases:
  - id: photo_01
    media: eval-dev/crowd/photo_01.jpg
    hold_s: 8                          # stills: simulated seconds held
    truth:
      counts: {whole: {person: 10}}    # zone id -> class -> count, at the end of the case
      frame_counts: labels/clip.csv    # videos: CSV t_s,zone,class,count (path relative to the spec)
      episodes:                        # precision/recall, matched by kind+zone+start window
        - {kind: parking_violation, zone: kerb, start_s: [100, 140]}
      operators:                       # normalised boxes; matched to attributed bikes by IoU >= 0.3
        - {box: [0.1, 0.2, 0.3, 0.6], operator: qingju}
      lines: {entry: {in: 6, out: 0}}  # (extension) crossing totals at the end of the case
```

``episodes: []`` (present but empty) says the case must start no episode of the kinds the set labels
anywhere; a case without ``episodes`` is not checked for them. Full reference: docs/accuracy.md.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError, field_validator, model_validator

from edge.config.base import Field, StrictModel
from edge.config.loader import problems_from_validation, read_yaml_text
from edge.errors import ConfigError
from edge.tools.assets import assets_dir

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MAX_SPEC_BYTES = 4 * 1024 * 1024


class EpisodeTruth(StrictModel):
    """An episode the agent must start: its kind, zone and when it may start (video seconds)."""

    kind: str = Field(..., min_length=1, description="Event kind, e.g. parking_violation, bike_bay_overflow.")
    zone: str = Field(..., min_length=1, description="Zone id the event names.")
    start_s: tuple[float, float] = Field(
        ..., description="[earliest, latest] start in seconds of video time (or simulated time for stills)."
    )

    @model_validator(mode="after")
    def _window(self) -> EpisodeTruth:
        if self.start_s[1] < self.start_s[0]:
            raise ValueError(f"start_s: [{self.start_s[0]}, {self.start_s[1]}] ends before it starts")
        return self


class OperatorTruth(StrictModel):
    """A bike in the picture and who operates it (None: a private bike, attributed to nobody)."""

    box: tuple[float, float, float, float] = Field(
        ..., description="[x1, y1, x2, y2] normalised 0..1 of the frame."
    )
    operator: str | None = Field(..., description="Operator name as the config's livery table names it; null: none.")

    @field_validator("box")
    @classmethod
    def _box(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = v
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise ValueError(f"{list(v)} is not a box [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
        return v


class LineTruth(StrictModel):
    """Crossings of one counting line over the whole case."""

    in_: int = Field(..., ge=0, alias="in", description="Crossings in the line's 'in' direction.")
    out: int = Field(..., ge=0, description="Crossings in the 'out' direction.")


class CaseTruth(StrictModel):
    """What a case must report."""

    counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Zone id -> class -> count at the end of the case."
    )
    frame_counts: str | None = Field(
        None, description="CSV t_s,zone,class,count of labelled frames (path relative to the spec file)."
    )
    episodes: list[EpisodeTruth] | None = Field(
        None, description="Episodes that must start; [] means none of the set's episode kinds may start."
    )
    operators: list[OperatorTruth] = Field(default_factory=list, description="Bikes and their operators.")
    lines: dict[str, LineTruth] = Field(default_factory=dict, description="Line id -> crossing totals.")

    @field_validator("counts")
    @classmethod
    def _counts(cls, v: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for zone, by_class in v.items():
            for name, n in by_class.items():
                if n < 0:
                    raise ValueError(f"{zone}.{name}: a count cannot be negative ({n})")
        return v


class CaseDefaults(StrictModel):
    """Defaults every case inherits."""

    camera: str | None = Field(None, description="Camera id of the site config to run (default: its first).")
    hold_s: float | None = Field(None, gt=0, description="Stills: simulated seconds each is held.")


class CaseSpec(StrictModel):
    """One labelled recording or photo."""

    id: str = Field(..., min_length=1, description="Case id, unique in the set.")
    media: str = Field(..., min_length=1, description="Image, video or sim:// source, relative to media_root.")
    camera: str | None = Field(None, description="Camera id (default: defaults.camera, else the first camera).")
    hold_s: float | None = Field(None, gt=0, description="Stills: simulated seconds held (default: defaults.hold_s).")
    truth: CaseTruth = Field(default_factory=CaseTruth, description="What the case must report.")


class EvalSpec(StrictModel):
    """A labelled set."""

    name: str = Field(..., min_length=1, description="Set name, shown in the report.")
    description: str = Field("", description="Free text: what the set is and how it was labelled.")
    config: str = Field(..., min_length=1, description="Site config to run, relative to the spec file.")
    media_root: str | None = Field(None, description="Folder media paths are relative to (${VAR} expanded).")
    defaults: CaseDefaults = Field(default_factory=CaseDefaults, description="Defaults of every case.")
    cases: list[CaseSpec] = Field(..., min_length=1, description="The labelled cases.")

    @model_validator(mode="after")
    def _unique(self) -> EvalSpec:
        seen: set[str] = set()
        for i, c in enumerate(self.cases):
            if c.id in seen:
                raise ValueError(f"cases[{i}].id: {c.id!r} is used twice; case ids must be unique")
            seen.add(c.id)
        return self


@dataclass(frozen=True, slots=True)
class FrameLabel:
    t_s: float
    zone: str
    cls: str
    count: int


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A spec with its paths resolved."""

    spec: EvalSpec
    path: Path
    config_path: Path
    media_root: Path

    def media(self, case: CaseSpec) -> str:
        """The case's source: a URL as written, else a path under media_root."""
        if "://" in case.media:
            return case.media
        return str(self.media_root / case.media)

    def camera(self, case: CaseSpec) -> str | None:
        return case.camera or self.spec.defaults.camera

    def hold_s(self, case: CaseSpec) -> float | None:
        return case.hold_s or self.spec.defaults.hold_s

    def frame_labels(self, case: CaseSpec) -> list[FrameLabel]:
        """The case's labelled frames (empty without ``frame_counts``). Raises ConfigError naming the row."""
        if case.truth.frame_counts is None:
            return []
        p = self.path.parent / case.truth.frame_counts
        where = f"cases[{case.id}].truth.frame_counts: {p}"
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{where}: no such file") from None
        rows = list(csv.DictReader(line for line in text.splitlines() if not line.lstrip().startswith("#")))
        out: list[FrameLabel] = []
        for n, row in enumerate(rows, start=2):
            try:
                out.append(FrameLabel(float(row["t_s"]), row["zone"], row["class"], int(row["count"])))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f"{where}: row {n} is not t_s,zone,class,count (a header line t_s,zone,class,count, "
                    f"then e.g. 12.0,floor,person,1): {row}"
                ) from None
            if out[-1].count < 0 or out[-1].t_s < 0:
                raise ConfigError(f"{where}: row {n} has a negative time or count")
        return out

    @property
    def episode_kinds(self) -> frozenset[str]:
        """Every kind the set labels: the kinds checked for spurious starts in episode-labelled cases."""
        return frozenset(e.kind for c in self.spec.cases for e in (c.truth.episodes or []))


def _expand(text: str, where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        val = os.environ.get(name)
        if val is not None:
            return val
        if default is not None:
            return default
        if name == "EDGE_ASSETS":
            return str(assets_dir())  # the tools' own default: ../shared/assets
        raise ConfigError(f"{where}: environment variable {name} is not set (set it, or write ${{{name}:-default}})")

    return _ENV.sub(repl, text)


def load_spec(path: str | os.PathLike[str]) -> LoadedSpec:
    """Read and validate a spec file. Raises ConfigError with one line per problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()[: MAX_SPEC_BYTES + 1]
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file; pass a labelled-set spec, e.g. tests/accuracy/sets/crowd-photos.yaml") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a directory; pass the spec YAML file") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise ConfigError(f"{p}: over {MAX_SPEC_BYTES:,} bytes; is this a spec?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: is not UTF-8 text; save the spec as UTF-8") from None
    data = read_yaml_text(text, source=str(p))
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a spec is a YAML mapping with name, config and cases (see docs/accuracy.md)")
    try:
        spec = EvalSpec.model_validate(data)
    except ValidationError as exc:
        lines = problems_from_validation(exc)
        raise ConfigError(f"{p}: {len(lines)} problem(s)", lines) from None
    config_path = p.parent / _expand(spec.config, f"{p}: config")
    media_root = p.parent
    if spec.media_root is not None:
        root = Path(_expand(spec.media_root, f"{p}: media_root"))
        media_root = root if root.is_absolute() else p.parent / root  # relative: to the spec file
    return LoadedSpec(spec=spec, path=p, config_path=config_path, media_root=media_root)
