"""Model manifests (``models/<name>.yaml``): what a vendor writes instead of code.

A manifest describes the ONNX file (name, sha256, licence, source), the input tensor and its
pre-processing, the output decoder family with its parameters, the labels, the map from labels
to canonical classes and the default score thresholds. ``load_manifest`` finds one by name or
path; ``resolve_model_file`` finds the weights on the model search path and checks sha256.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import ValidationError, field_validator, model_validator

from edge.classes import CLASS_ID, CLASSES, GROUPS
from edge.config.base import Field, StrictModel
from edge.errors import ModelError

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
SYSTEM_MODELS = Path("/var/lib/edge/models")


class ModelFile(StrictModel):
    """The ONNX weights."""

    name: str = Field(..., min_length=1, description="File name, looked up on the model search path.")
    sha256: str = Field(..., description="Expected sha256 of the file (64 hex digits).")
    licence: str = Field(..., min_length=1, description="Licence of the weights (SPDX id where possible).")
    source: str = Field(..., min_length=1, description="Where the weights come from (URL or vendor).")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        v = v.lower()
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError(f"sha256 {v!r} must be 64 hex digits; compute it with `sha256sum FILE`")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if "/" in v or "\\" in v:
            raise ValueError(f"{v!r}: give a bare file name; the file is searched on EDGE_MODEL_PATH")
        return v


class ExtraInput(StrictModel):
    """A second graph input computed from the frame size."""

    name: str = Field(..., min_length=1, description="Graph input name.")
    kind: Literal["scale_factor", "orig_size_wh", "orig_size_hw", "input_size_hw"] = Field(
        ...,
        description=(
            "What to feed: 'scale_factor' = [in_h/H, in_w/W]; 'orig_size_wh' = [W, H]; "
            "'orig_size_hw' = [H, W]; 'input_size_hw' = [in_h, in_w]."
        ),
    )
    dtype: Literal["float32", "int64", "int32"] = Field(
        default="float32", description="Element type of the tensor."
    )
    batched: bool = Field(default=True, description="Shape [1, 2] when true, [2] when false.")


class InputSpec(StrictModel):
    """The image input and its pre-processing."""

    name: str = Field(..., min_length=1, description="Graph input name of the image tensor.")
    size: tuple[int, int] = Field(..., description="Model input [width, height] in pixels.")
    layout: Literal["NCHW", "NHWC"] = Field(default="NCHW", description="Tensor layout.")
    dtype: Literal["float32", "uint8"] = Field(
        default="float32", description="Element type of the image tensor."
    )
    colour: Literal["BGR", "RGB"] = Field(default="BGR", description="Channel order the model expects.")
    scale: float = Field(
        default=1.0, gt=0, description="Pixels (0..255) are multiplied by this first (1/255 for 0..1)."
    )
    mean: tuple[float, float, float] = Field(
        default=(0.0, 0.0, 0.0), description="Subtracted after scaling, per channel in model order."
    )
    std: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="Divisor after the mean, per channel in model order."
    )
    resize: Literal["letterbox_topleft", "letterbox_center", "stretch"] = Field(
        default="letterbox_topleft",
        description="Keep-ratio resize pasted top-left or centred on a padded canvas, or plain stretch to size.",
    )
    interpolation: Literal["linear", "area", "nearest", "cubic"] = Field(
        default="linear",
        description="Resize interpolation, as the model's reference pre-processing does it (OpenCV).",
    )
    rounding: Literal["floor", "round"] = Field(
        default="floor",
        description="How the keep-ratio size is rounded to pixels (floor = int(w*r) as YOLOX does).",
    )
    pad_value: float = Field(
        default=114.0, ge=0, le=255, description="Pixel value (0..255, before normalisation) of the padding."
    )
    extra: list[ExtraInput] = Field(default_factory=list, description="Extra inputs the graph wants.")

    @field_validator("size")
    @classmethod
    def _size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (16 <= v[0] <= 4096 and 16 <= v[1] <= 4096):
            raise ValueError(f"input size {list(v)} must be [width, height] within 16..4096")
        return v

    @field_validator("std")
    @classmethod
    def _std(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in v):
            raise ValueError(f"std {list(v)} must be > 0 for every channel")
        return v


class DecoderSpec(StrictModel):
    """How the raw outputs become boxes."""

    family: str = Field(
        ...,
        description="Adapter family: yolox, nanodet, yolov8, detr, nms_rows, ssd (one file per family).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Family parameters (strides, reg_max, ...)."
    )
    outputs: list[str] | None = Field(
        default=None,
        description="Output names to feed the decoder, in its order; None = all graph outputs in graph order.",
    )
    nms: Literal["class_aware", "agnostic", "none"] = Field(
        default="class_aware",
        description="Default NMS: per label, across labels, or none (end-to-end or NMS-inside models).",
    )
    nms_iou: float = Field(default=0.45, gt=0, le=1, description="Default NMS IoU threshold.")


class Manifest(StrictModel):
    """One model, as a vendor describes it."""

    name: str = Field(..., min_length=1, description="Model name; goes into every event.")
    description: str = Field(default="", description="Free text for humans.")
    file: ModelFile = Field(..., description="The ONNX weights.")
    input: InputSpec = Field(..., description="Image input and pre-processing.")
    decoder: DecoderSpec = Field(..., description="Output decoder family and parameters.")
    labels: list[str] = Field(..., min_length=1, description="The model's own labels, in output order.")
    class_map: dict[str, str] = Field(
        default_factory=dict,
        description="Model label -> canonical class (person, bicycle, motorcycle, car, bus, truck); others map to 'other'.",
    )
    groups: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in GROUPS.items()},
        description="Named groups of canonical classes, usable as threshold keys (vehicle = car|bus|truck ...).",
    )
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.3},
        description="Default score thresholds: 'default', then per group, canonical class or model label.",
    )
    source_path: str | None = Field(
        default=None, description="Set by the loader: the YAML file this came from."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        problems: list[str] = []
        label_set = set(self.labels)
        if len(label_set) != len(self.labels):
            problems.append("labels: duplicate labels; each output class needs its own name")
        for label, cls in self.class_map.items():
            if label not in label_set:
                problems.append(f"class_map: {label!r} is not one of the model's labels")
            if cls not in CLASS_ID:
                problems.append(
                    f"class_map.{label}: {cls!r} is not a canonical class; use one of {', '.join(CLASSES)}"
                )
        for g, members in self.groups.items():
            bad = [m for m in members if m not in CLASS_ID]
            if bad:
                problems.append(f"groups.{g}: {bad} are not canonical classes; use {', '.join(CLASSES)}")
        for key, t in self.thresholds.items():
            if not 0.0 <= t <= 1.0:
                problems.append(f"thresholds.{key}: {t} is outside 0..1")
            if key != "default" and key not in CLASS_ID and key not in self.groups and key not in label_set:
                problems.append(
                    f"thresholds.{key}: not 'default', a canonical class, a group or a model label"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ---- derived tables -------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def class_of_label(self) -> np.ndarray:
        """int32 (L,): canonical class id for each label index, -1 for other."""
        return np.array([CLASS_ID.get(self.class_map.get(lb, ""), -1) for lb in self.labels], np.int32)

    def label_thresholds(
        self, override: float | None = None, extra: dict[str, float] | None = None
    ) -> np.ndarray:
        """float32 (L,) threshold per label: label > canonical class > group > default.

        ``override`` replaces the manifest's whole table (one threshold for all); ``extra`` entries
        (from the site config) are applied on top of either.
        """
        base = {"default": override} if override is not None else self.thresholds
        table: dict[str, float] = {**base, **(extra or {})}
        groups = {**self.groups}
        out = np.empty(len(self.labels), np.float32)
        default = table.get("default", 0.3)
        for i, lb in enumerate(self.labels):
            cls = self.class_map.get(lb)
            t = default
            if cls is not None:
                for g, members in groups.items():
                    if g in table and cls in members:
                        t = table[g]
                        break
                if cls in table:
                    t = table[cls]
            if lb in table:
                t = table[lb]
            out[i] = t
        return out


def manifest_dirs() -> list[Path]:
    """Where ``models/<name>.yaml`` is looked for, in order."""
    dirs = [Path(p) for p in os.environ.get("EDGE_MODEL_PATH", "").split(":") if p]
    dirs += [Path("models"), SYSTEM_MODELS, REPO_MODELS]
    return dirs


def model_file_dirs() -> list[Path]:
    """Where ONNX files are looked for, in order."""
    dirs = [Path(p) for p in os.environ.get("EDGE_MODEL_PATH", "").split(":") if p]
    return [*dirs, Path("models"), SYSTEM_MODELS]


def available_models() -> list[str]:
    """Names of every manifest found on the manifest search path."""
    names: set[str] = set()
    for d in manifest_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_manifest(ref: str) -> Path | None:
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        p = Path(ref)
        return p if p.is_file() else None
    for d in manifest_dirs():
        p = d / f"{ref}.yaml"
        if p.is_file():
            return p
    return None


def load_manifest(ref: str) -> Manifest:
    """A manifest by name (``yolox_nano_416``) or by path to a YAML file. Raises ModelError."""
    path = find_manifest(ref)
    if path is None:
        if ref.endswith((".yaml", ".yml")) or os.sep in ref:
            raise ModelError(f"model manifest {ref}: no such file")
        where = ", ".join(str(d) for d in manifest_dirs())
        avail = ", ".join(available_models()) or "none"
        raise ModelError(f"unknown model {ref!r}: no {ref}.yaml in {where}; available: {avail}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelError(f"model manifest {path}: YAML syntax error: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"model manifest {path}: must be a YAML mapping")
    data["source_path"] = str(path)
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required but missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{loc}: {msg}" if loc else msg)
        raise ModelError(f"model manifest {path}: " + "; ".join(lines)) from None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model_file(manifest: Manifest, *, check_sha: bool = True) -> Path:
    """The weights' path on the search path, sha256-checked. Raises ModelError saying where it looked."""
    dirs = model_file_dirs()
    if manifest.source_path:
        dirs.append(Path(manifest.source_path).parent)
    dirs = list(dict.fromkeys(d.absolute() for d in dirs))
    for d in dirs:
        p = d / manifest.file.name
        if p.is_file():
            if check_sha:
                actual = file_sha256(p)
                if actual != manifest.file.sha256:
                    raise ModelError(
                        f"model file {p}: sha256 is {actual} but manifest {manifest.name} expects "
                        f"{manifest.file.sha256}; the file is corrupt or a different version - replace it "
                        "or fix the manifest"
                    )
            return p
    where = ", ".join(str(d) for d in dirs)
    raise ModelError(
        f"model file {manifest.file.name} (sha256 {manifest.file.sha256[:12]}...) for model {manifest.name} "
        f"not found; looked in: {where}. Copy it there or add its folder to EDGE_MODEL_PATH"
    )
