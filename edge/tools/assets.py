"""Where the field tools find the shared assets (real models and footage) when nothing is configured."""

from __future__ import annotations

import os
from pathlib import Path


def assets_dir() -> Path:
    """EDGE_ASSETS, else ``../shared/assets`` seen from the working directory or from the repository."""
    env = os.environ.get("EDGE_ASSETS")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        p = base.parent / "shared" / "assets"
        if p.is_dir():
            return p
    return Path.cwd().parent / "shared" / "assets"


def ensure_model_path() -> None:
    """Append the shared assets' ``models/`` folder to EDGE_MODEL_PATH (searched after what is set)."""
    models = assets_dir() / "models"
    cur = os.environ.get("EDGE_MODEL_PATH", "")
    if models.is_dir() and str(models) not in cur.split(":"):
        os.environ["EDGE_MODEL_PATH"] = f"{cur}:{models}" if cur else str(models)
