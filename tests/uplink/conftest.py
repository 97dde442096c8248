# The broker fixtures; the lead will also list "tests.fixtures.broker" in tests/conftest.py pytest_plugins.
from tests.fixtures.broker import mosquitto, mosquitto_tls  # noqa: F401
