"""Config semantic check: does every camera's model manifest exist? (weights are not required)."""

from __future__ import annotations

from edge.config.site import SiteConfig
from edge.errors import ModelError
from edge.vision.manifest import available_models, find_manifest, load_manifest


def check_models(cfg: SiteConfig) -> list[str]:
    """One problem line per camera whose ``model`` names no readable manifest ('motion' is always fine)."""
    problems: list[str] = []
    for i, cam in enumerate(cfg.cameras):
        if cam.model == "motion":
            continue
        if find_manifest(cam.model) is None:
            avail = ", ".join(["motion", *available_models()])
            problems.append(f"cameras[{i}].model: unknown model {cam.model!r}; available: {avail}")
            continue
        try:
            m = load_manifest(cam.model)
        except ModelError as exc:
            problems.append(f"cameras[{i}].model: {exc}")
            continue
        for key in cam.detector.thresholds:
            if (
                key not in ("default",)
                and key not in m.groups
                and key not in m.labels
                and key not in m.class_map.values()
            ):
                from edge.classes import CLASS_ID

                if key not in CLASS_ID:
                    problems.append(
                        f"cameras[{i}].detector.thresholds.{key}: not a class, group or label of model {m.name}"
                    )
    return problems
