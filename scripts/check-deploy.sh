#!/usr/bin/env bash
# Checks the deployment files with the real tools (installed by
# scripts/tools.sh into .tools/): the Helm chart (lint, template with the
# default values and every ci/*-values.yaml, kubernetes-validate --strict,
# values.schema.json refusing wrong types, scripts/check_chart.py), the
# chart's copy of schema.sql, docker-compose.yml, and both Dockerfiles
# (hadolint). Called by scripts/test.sh; exits non-zero on any problem.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/tools.sh
HELM=.tools/bin/helm
VENV=.tools/venv/bin
CHART=helm-chart/chat-app
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

step() { echo "check-deploy: $*"; }

step "the chart's schema.sql is the repository's"
if ! cmp -s schema.sql "$CHART/files/schema.sql"; then
    echo "check-deploy: $CHART/files/schema.sql differs from schema.sql; run: cp schema.sql $CHART/files/schema.sql" >&2
    exit 1
fi

for variant in default flipped external; do
    values=()
    [ "$variant" = default ] || values=(-f "$CHART/ci/$variant-values.yaml")
    step "helm lint / template / kubernetes-validate --strict: $variant values"
    "$HELM" lint --strict "$CHART" "${values[@]}" >"$out/lint" 2>&1 || { cat "$out/lint" >&2; exit 1; }
    "$HELM" template my-chat "$CHART" --namespace chat-app "${values[@]}" >"$out/$variant.yaml" 2>"$out/template.err" \
        || { cat "$out/template.err" >&2; exit 1; }
    "$VENV/kubernetes-validate" --strict --quiet "$out/$variant.yaml"
    "$VENV/python" scripts/check_chart.py "$out/$variant.yaml" "$variant" "$ROOT"
done

step "values.schema.json refuses wrong types"
for bad in chatServer.service.nodePort=abc autoscaler.minReplicas=two postgresql.persistence.enabled=maybe \
    chatServer.service.type=Ingress autoscaler.usersPerPod=0 chatServer.registration=sometimes \
    chatServer.tls.enabled=yes dashboard.auth.enabled=maybe; do
    if "$HELM" template my-chat "$CHART" --set "$bad" >/dev/null 2>"$out/schema.err"; then
        echo "check-deploy: --set $bad was accepted" >&2
        exit 1
    fi
    grep -q "values don't meet the specifications of the schema" "$out/schema.err" \
        || { echo "check-deploy: --set $bad failed for another reason:" >&2; cat "$out/schema.err" >&2; exit 1; }
done

step "TLS without a certificate source, or no port at all, is refused"
for bad in "chatServer.tls.enabled=true" "chatServer.tls.plaintext=false"; do
    if "$HELM" template my-chat "$CHART" --set "$bad" >/dev/null 2>"$out/tls.err"; then
        echo "check-deploy: --set $bad was accepted" >&2
        exit 1
    fi
    grep -q "chatServer.tls" "$out/tls.err" || { cat "$out/tls.err" >&2; exit 1; }
done

step "docker compose config; the dashboard published on the host's loopback only"
.tools/bin/docker-compose -f docker-compose.yml config -q
.tools/bin/docker-compose -f docker-compose.yml config --format json | "$VENV/python" -c '
import json, sys
ports = json.load(sys.stdin)["services"]["dashboard"]["ports"]
if not ports or any(p.get("host_ip") != "127.0.0.1" for p in ports):
    sys.exit(f"check-deploy: docker-compose.yml publishes the dashboard beyond 127.0.0.1: {ports}")
'

step "hadolint Dockerfile Dockerfile.autoscaler"
"$VENV/hadolint" Dockerfile Dockerfile.autoscaler

step "ok"
