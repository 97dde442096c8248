#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, the import contract, then pytest.
# Installs what it needs (Debian: mosquitto, chromium, chromium-driver; pip: .[dev]).
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE_WITH_BROWSER=1 bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export EDGE_ASSETS="${EDGE_ASSETS:-$(cd .. && pwd)/shared/assets}"

echo "== ruff";          ruff check edge firmware_sim tests
echo "== mypy";          mypy edge
echo "== import-linter"; lint-imports
echo "== pytest"
set +e
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi
exit "$rc"
