#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, from operator/src/api/schema.ts) into the chart
# (helm/walkeeper/files/crds/), where templates/crds.yaml reads them with .Files.Get.
# e2e/test/chart/crds.test.ts fails when the two copies differ.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/crds"
DST="$ROOT/helm/walkeeper/files/crds"
mkdir -p "$DST"
rm -f "$DST"/*.yaml
cp "$SRC"/*.yaml "$DST"/
echo "synced $(ls "$DST" | wc -l) CRD(s) into ${DST#"$ROOT"/}"
