"""The only module that imports onnxruntime: load a graph, describe its I/O, run it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.errors import ModelError

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}

ort.set_default_logger_severity(3)  # errors only: no per-initializer warnings on the box's log


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """A graph input or output: name, shape (None for a symbolic dimension) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def shape_text(self) -> str:
        return "[" + ",".join("?" if d is None else str(d) for d in self.shape) + "]"


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def _info(arg: ort.NodeArg) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in (arg.shape or []))
    return TensorInfo(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


class OnnxSession:
    """An onnxruntime InferenceSession with quiet logs and a chosen provider and thread count."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int | None = None,
        provider: str = "CPUExecutionProvider",
        spin: bool = False,
    ) -> None:
        avail = available_providers()
        if provider not in avail:
            raise ModelError(
                f"execution provider {provider} is not installed; available here: {', '.join(avail)}"
            )
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            # Idle intra-op threads otherwise spin for a while after each run, stealing the cores
            # that pre-processing and decoding need next on a 2-4 core box.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"model file {path} cannot be loaded by onnxruntime ({first}); the file is corrupt, "
                "truncated or not an ONNX graph - download it again"
            ) from None
        self.path = path
        self.threads = opts.intra_op_num_threads
        self.provider = provider
        self.inputs = [_info(a) for a in self._sess.get_inputs()]
        self.outputs = [_info(a) for a in self._sess.get_outputs()]
        self._out_names = [o.name for o in self.outputs]
        log.debug("loaded %s provider=%s threads=%d", path, provider, self.threads)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._sess.run(self._out_names, feeds))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"inference failed for {self.path.name}: {first}") from None
