import os

import pytest

pytest_plugins = ["tests.fixtures.assets", "tests.fixtures.broker", "tests.fixtures.street_day"]


@pytest.fixture(autouse=True)
def _model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests find the shared model files through EDGE_MODEL_PATH, like a vendor would."""
    from tests.fixtures.assets import assets_dir

    extra = str(assets_dir() / "models")
    cur = os.environ.get("EDGE_MODEL_PATH", "")
    if extra not in cur.split(":"):
        monkeypatch.setenv("EDGE_MODEL_PATH", f"{cur}:{extra}" if cur else extra)
