"""Tiny synthetic ONNX graphs (built with the ``onnx`` package) and manifest helpers for the tests.

A synthetic graph takes a real image input and returns fixed tensors (plus 0 x mean(input), so the
input is consumed): enough to exercise a decoder family end to end, or to break a model on purpose
(NaN outputs, boxes far outside the image).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def shipped(name: str) -> dict[str, Any]:
    """A shipped manifest as a dict (a fresh copy to modify)."""
    return copy.deepcopy(yaml.safe_load((REPO / "models" / f"{name}.yaml").read_text()))


def write_manifest(dir_: Path, data: dict[str, Any], name: str | None = None) -> Path:
    data = copy.deepcopy(data)
    if name:
        data["name"] = name
    p = dir_ / f"{data['name']}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def constant_model(
    path: Path,
    input_name: str,
    input_shape: list[int],
    outputs: dict[str, np.ndarray],
    extra_inputs: dict[str, tuple[list[int], str]] | None = None,
    input_dtype: str = "float32",
) -> Path:
    """Write a graph whose outputs are the given constants (float ones + 0*mean(image))."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    types = {
        "float32": TensorProto.FLOAT,
        "int64": TensorProto.INT64,
        "int32": TensorProto.INT32,
        "uint8": TensorProto.UINT8,
    }
    inputs = [helper.make_tensor_value_info(input_name, types[input_dtype], input_shape)]
    for name, (shape, dt) in (extra_inputs or {}).items():
        inputs.append(helper.make_tensor_value_info(name, types[dt], shape))
    nodes = [
        helper.make_node("Cast", [input_name], ["_img"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["_img"], ["_mean"], keepdims=0),
        helper.make_node("Constant", [], ["_zero"], value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node("Mul", ["_mean", "_zero"], ["_nil"]),
    ]
    outs = []
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        dt = str(arr.dtype)
        nodes.append(helper.make_node("Constant", [], [f"_c_{name}"], value=numpy_helper.from_array(arr)))
        if dt == "float32":
            nodes.append(helper.make_node("Add", [f"_c_{name}", "_nil"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [f"_c_{name}"], [name]))
        outs.append(helper.make_tensor_value_info(name, types[dt], list(arr.shape)))
    graph = helper.make_graph(nodes, "synthetic", inputs, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def synthetic_manifest(
    name: str,
    file: Path,
    family: str,
    labels: list[str],
    *,
    size: int = 64,
    params: dict[str, Any] | None = None,
    nms: str = "class_aware",
    extra: list[dict[str, Any]] | None = None,
    class_map: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "file": {"name": file.name, "sha256": sha256(file), "licence": "Apache-2.0", "source": "tests"},
        "input": {
            "name": "images",
            "size": [size, size],
            "layout": "NCHW",
            "dtype": "float32",
            "colour": "BGR",
            "resize": "letterbox_topleft",
            "pad_value": 114,
            "extra": extra or [],
        },
        "decoder": {"family": family, "params": params or {}, "nms": nms, "nms_iou": 0.5},
        "labels": labels,
        "class_map": class_map or {},
        "thresholds": {"default": 0.3},
    }
