#!/usr/bin/env bash
# Fetches the chart library of chat_dashboard from the npm registry and puts
# its files where the binary embeds them (src/dashboard/assets/): uPlot, MIT
# licensed, no dependencies. The tarball's integrity is checked against the
# one pinned here; change both lines together to upgrade.
#
#   bash scripts/vendor-uplot.sh
set -euo pipefail
VERSION=1.6.32
INTEGRITY='sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=='
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack "uplot@$VERSION" --silent >/dev/null
got="sha512-$(openssl dgst -sha512 -binary "uplot-$VERSION.tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "vendor-uplot: integrity $got, expected $INTEGRITY" >&2; exit 1; }
tar xzf "uplot-$VERSION.tgz"
dest="$ROOT/src/dashboard/assets"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css "$dest/"
cp package/LICENSE "$dest/uPlot.LICENSE"
echo "vendor-uplot: uPlot $VERSION in $dest"
