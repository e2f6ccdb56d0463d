#!/usr/bin/env bash
# Checks the deployment files with the real tools (installed by
# scripts/tools.sh into .tools/): the Helm chart (lint, template with the
# default values and every ci/*-values.yaml, kubernetes-validate --strict,
# values.schema.json refusing wrong types, scripts/check_chart.py, two
# renders of the same values identical, the autoscaler's admission policy
# on sample requests (scripts/check_admission_policy.py)), docker-compose.yml,
# and both Dockerfiles (hadolint). Called by scripts/test.sh; exits non-zero
# on any problem.
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

# The chart needs its passwords or existingSecrets; "default" is the
# defaults plus the Secrets scripts/chart-secrets.sh makes.
SECRETS=(-f "$CHART/ci/secrets-values.yaml")

for variant in default flipped external ha; do
    values=("${SECRETS[@]}")
    [ "$variant" = default ] || values=(-f "$CHART/ci/$variant-values.yaml")
    step "helm lint / template / kubernetes-validate --strict: $variant values"
    "$HELM" lint --strict "$CHART" "${values[@]}" >"$out/lint" 2>&1 || { cat "$out/lint" >&2; exit 1; }
    "$HELM" template my-chat "$CHART" --namespace chat-app "${values[@]}" >"$out/$variant.yaml" 2>"$out/template.err" \
        || { cat "$out/template.err" >&2; exit 1; }
    "$VENV/kubernetes-validate" --strict --quiet "$out/$variant.yaml"
    "$VENV/python" scripts/check_chart.py "$out/$variant.yaml" "$variant" "$ROOT"
    # GitOps tools (Argo CD, Flux) render again at every sync: nothing may differ.
    "$HELM" template my-chat "$CHART" --namespace chat-app "${values[@]}" >"$out/$variant.again.yaml"
    cmp -s "$out/$variant.yaml" "$out/$variant.again.yaml" \
        || { echo "check-deploy: two renders of the $variant values differ:" >&2; diff "$out/$variant.yaml" "$out/$variant.again.yaml" >&2; exit 1; }
done

step "the autoscaler's ValidatingAdmissionPolicy on allowed and refused sample requests (CEL)"
"$VENV/python" scripts/check_admission_policy.py "$out/default.yaml"

step "no password and no existingSecret: refused with what to set"
if "$HELM" template my-chat "$CHART" >/dev/null 2>"$out/nopass.err"; then
    echo "check-deploy: the chart rendered without any password or existingSecret" >&2
    exit 1
fi
grep -q "postgresql.auth.password is empty: set it, or set postgresql.auth.existingSecret" "$out/nopass.err" \
    || { cat "$out/nopass.err" >&2; exit 1; }

step "values.schema.json refuses wrong types"
for bad in chatServer.service.nodePort=abc autoscaler.minReplicas=two postgresql.persistence.enabled=maybe \
    chatServer.service.type=Ingress autoscaler.usersPerPod=0 chatServer.registration=sometimes \
    chatServer.tls.enabled=yes dashboard.auth.enabled=maybe 'redis.keyPrefix=a*' networkPolicy.enabled=maybe \
    postgresql.auth.username=Robert-drop; do
    if "$HELM" template my-chat "$CHART" "${SECRETS[@]}" --set "$bad" >/dev/null 2>"$out/schema.err"; then
        echo "check-deploy: --set $bad was accepted" >&2
        exit 1
    fi
    grep -q "values don't meet the specifications of the schema" "$out/schema.err" \
        || { echo "check-deploy: --set $bad failed for another reason:" >&2; cat "$out/schema.err" >&2; exit 1; }
done

step "TLS without a certificate source, or no port at all, is refused"
for bad in "chatServer.tls.enabled=true" "chatServer.tls.plaintext=false"; do
    if "$HELM" template my-chat "$CHART" "${SECRETS[@]}" --set "$bad" >/dev/null 2>"$out/tls.err"; then
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
