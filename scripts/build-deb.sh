#!/usr/bin/env bash
# Build the Debian package a fleet installs: dist/edge_<version>_<arch>.deb.
#
#   bash scripts/build-deb.sh                              # this machine's architecture and python3
#   bash scripts/build-deb.sh --arch arm64 --python 3.11   # Raspberry Pi OS Bookworm, 64-bit (+deb12)
#   bash scripts/build-deb.sh --arch arm64 --python 3.13   # Raspberry Pi OS Trixie, 64-bit (+deb13)
#
# The package carries the edge wheel and every runtime dependency as wheels for the target
# (downloaded with pip from the hash-locked requirements/box-py<XY>-<machine>.txt, binary only);
# its postinst builds /opt/edge/venv from them with no network. Cross-building needs no emulator:
# nothing is compiled, only the target's wheels are fetched. Details: docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

ARCH=""; PYVER=""; OUT="$REPO/dist"; REVISION=1
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=$2; shift 2 ;;
    --python) PYVER=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --revision) REVISION=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
ARCH=${ARCH:-$(dpkg --print-architecture)}
if [ -z "$PYVER" ]; then
  if [ "$ARCH" != "$(dpkg --print-architecture)" ]; then
    echo "build-deb: cross-building for $ARCH needs --python X.Y (the target's Debian python3)" >&2; exit 2
  fi
  PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi
case "$ARCH" in
  amd64) MACHINE=x86_64 ;;
  arm64) MACHINE=aarch64 ;;
  *) echo "build-deb: $ARCH is not supported: onnxruntime, OpenCV and numpy publish wheels for amd64 and arm64 only (no armhf/armv7)" >&2; exit 2 ;;
esac
PYTAG=${PYVER/./}
LOCK="requirements/box-py$PYTAG-$MACHINE.txt"
if [ ! -f "$LOCK" ]; then
  echo "build-deb: no lock file $LOCK for CPython $PYVER on $MACHINE; add the target to scripts/lock.sh" >&2; exit 2
fi
for tool in dpkg-deb python3; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev python3-venv)" >&2; exit 2; }
done
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
# One package per Debian release: its python3 fixes the wheels' CPython ABI.
case "$PYVER" in 3.11) DIST=deb12 ;; 3.13) DIST=deb13 ;; *) DIST="py$PYTAG" ;; esac
DEBVER="$VERSION-$REVISION+$DIST"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/edge-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"

echo "build-deb: edge $DEBVER for $ARCH, CPython $PYVER, from $LOCK"
# A clean venv for the build tools (pip), and a clean copy of the sources (no in-tree build files).
python3 -m venv "$WORK/tools"
PIP=("$WORK/tools/bin/python" -m pip --disable-pip-version-check)
mkdir -p "$WORK/src"
cp -r pyproject.toml README.md edge firmware_sim city "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"${PIP[@]}" wheel --quiet --no-deps -w "$WORK/wheels" "$WORK/src"

# The target's wheels, checked against the lock's hashes. pip expands no manylinux range itself,
# so every glibc level up to the oldest supported target's (Debian 12: glibc 2.36) is listed.
platforms=(--platform "manylinux2014_$MACHINE")
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$MACHINE"); done
"${PIP[@]}" download --quiet --no-deps --only-binary=:all: --require-hashes \
  --implementation cp --python-version "$PYVER" --abi "cp$PYTAG" --abi abi3 --abi none "${platforms[@]}" \
  -d "$WORK/wheels" -r "$LOCK"

install -d "$STAGE/DEBIAN" "$STAGE/opt/edge/wheels" "$STAGE/usr/lib/systemd/system" "$STAGE/etc/edge" \
  "$STAGE/usr/share/doc/edge/examples" "$STAGE/var/lib/edge/models" "$STAGE/usr/bin"
install -m 0644 "$WORK"/wheels/*.whl "$STAGE/opt/edge/wheels/"
install -m 0644 "$LOCK" "$STAGE/opt/edge/requirements.txt"
install -m 0644 deploy/edge-agent.service "$STAGE/usr/lib/systemd/system/edge-agent.service"
install -m 0640 deploy/debian/edge.env "$STAGE/etc/edge/edge.env"
install -m 0644 models/*.yaml "$STAGE/var/lib/edge/models/"
install -m 0644 README.md docs/*.md "$STAGE/usr/share/doc/edge/"
install -m 0644 configs/*.yaml "$STAGE/usr/share/doc/edge/examples/"
ln -s /opt/edge/venv/bin/edge-agent "$STAGE/usr/bin/edge-agent"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$STAGE/DEBIAN/"
echo /etc/edge/edge.env > "$STAGE/DEBIAN/conffiles"

next_minor="${PYVER%%.*}.$(( ${PYVER##*.} + 1 ))"
recommends="systemd"
[ "$ARCH" = arm64 ] && recommends="python3-lgpio, systemd"
size=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
target="Debian/Raspberry Pi OS $DIST, $ARCH"
sed -e "s/@VERSION@/$DEBVER/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" \
    -e "s/@PYDEPENDS@/python3 (>= $PYVER), python3 (<< $next_minor)/" \
    -e "s/@RECOMMENDS@/$recommends/" -e "s/@PYVER@/$PYVER/" -e "s|@TARGET@|$target|" \
    deploy/debian/control.in > "$STAGE/DEBIAN/control"

mkdir -p "$OUT"
deb="$OUT/edge_${DEBVER}_${ARCH}.deb"
# The wheels are zip files already: gzip at a low level costs seconds, xz would cost minutes.
dpkg-deb --root-owner-group -Zgzip -z1 --build "$STAGE" "$deb" >/dev/null
echo "build-deb: $deb ($(du -h "$deb" | cut -f1), $(find "$STAGE/opt/edge/wheels" -name '*.whl' | wc -l) wheels)"
