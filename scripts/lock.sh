#!/usr/bin/env bash
# Regenerate the hash-locked runtime requirements a box image installs (requirements/box-*.txt),
# one file per target, from pyproject.toml's runtime dependencies (no dev extras), with uv:
#
#   bash scripts/lock.sh            # then commit requirements/ (tests/install checks it is current)
#
# Targets: CPython 3.11 (Debian 12 / Raspberry Pi OS Bookworm) and 3.13 (Debian 13 / Trixie), on
# aarch64 (a 64-bit Pi) and x86_64 (CI, x86 boxes), wheels for glibc 2.36 or older. A lock pins
# every package, dependencies of dependencies included, with the sha256 of every file PyPI has
# for that version; pip --require-hashes refuses anything else.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-}
if [ -z "$UV" ]; then
  if command -v uv >/dev/null; then UV=uv; else
    tools="${XDG_CACHE_HOME:-$HOME/.cache}/edge-tools"
    [ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q uv; }
    UV="$tools/bin/uv"
  fi
fi

mkdir -p requirements
for py in 3.11 3.13; do
  for machine in aarch64 x86_64; do
    out="requirements/box-py${py/./}-$machine.txt"
    # --custom-compile-command: the header names this script, the one command that makes the file.
    "$UV" pip compile pyproject.toml --quiet --generate-hashes --no-annotate \
      --python-version "$py" --python-platform "$machine-manylinux_2_36" \
      --index-url https://pypi.org/simple --no-emit-index-url \
      --custom-compile-command "bash scripts/lock.sh  # uv pip compile pyproject.toml --generate-hashes --python-version $py --python-platform $machine-manylinux_2_36" \
      -o "$out"
    echo "lock: $out ($(grep -c '==' "$out") packages)"
  done
done
