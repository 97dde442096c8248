#!/usr/bin/env bash
# The main job on a fresh machine: install, then run the synthetic-street demo (nothing downloaded).
# Extra arguments go to `edge-agent demo` (e.g. --broker 127.0.0.1:1883, --real).
set -euo pipefail
cd "$(dirname "$0")/.."
EDGE_WITH_BROKER=0 bash scripts/bootstrap.sh
exec .venv/bin/edge-agent demo "$@"
