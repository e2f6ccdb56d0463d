#!/usr/bin/env bash
# Checks the deployment files with the real tools (installed by
# scripts/tools.sh into .tools/): the Helm chart (lint, template with the
# default values and every ci/*-values.yaml, kubernetes-validate --strict,
# values.schema.json refusing wrong types, scripts/check_chart.py, two
# renders of the same values identical, the autoscaler's admission policy
# on sample requests (scripts/check_admission_policy.py), the web client's
# Ingress in front of a TLS web port), docker-compose.yml (the dashboard and
# the web ports on the host's loopback only), and both Dockerfiles
# (hadolint). Called by scripts/test.sh; exits non-zero
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

for variant in default flipped external ha web-ingress; do
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
    postgresql.auth.username=Robert-drop web.enabled=maybe web.port=abc web.passwordsWithoutTls=sometimes \
    web.service.type=Ingress 'web.allowedOrigins={chat.example.com}' 'web.ingress.host=chat.example.com/chat' \
    web.ingress.tls=on; do
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

step "web: a port taken twice, or Ingress TLS without a host, is refused"
for bad in web.port=8080 web.port=9090 "web.ingress.enabled=true,web.ingress.tls.enabled=true"; do
    if "$HELM" template my-chat "$CHART" "${SECRETS[@]}" --set "$bad" >/dev/null 2>"$out/web.err"; then
        echo "check-deploy: --set $bad was accepted" >&2
        exit 1
    fi
    grep -q "web\.port must differ\|web.ingress.tls.enabled needs web.ingress.host" "$out/web.err" || { cat "$out/web.err" >&2; exit 1; }
done

step "web: the Ingress in front of a TLS web port speaks HTTPS to it and the pods refuse plain passwords"
"$HELM" template my-chat "$CHART" --namespace chat-app -f "$CHART/ci/web-ingress-values.yaml" \
    --set chatServer.tls.enabled=true --set chatServer.tls.secretName=team-chat-cert >"$out/web-tls.yaml"
"$VENV/kubernetes-validate" --strict --quiet "$out/web-tls.yaml"
"$VENV/python" - "$out/web-tls.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ing = [d for d in docs if d["kind"] == "Ingress"][0]
if ing["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/backend-protocol") != "HTTPS":
    sys.exit("check-deploy: the Ingress speaks plain http to a web port that serves https")
chat = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-chat-server")][0]
env = {e["name"]: e.get("value") for e in chat["spec"]["template"]["spec"]["containers"][0]["env"]}
if env.get("WEB_PASSWORDS_WITHOUT_TLS") != "refuse":
    sys.exit("check-deploy: passwords over plain ws accepted although the pods serve TLS")
PY

step "docker compose config; the dashboard and the web ports published on the host's loopback only"
.tools/bin/docker-compose -f docker-compose.yml config -q
.tools/bin/docker-compose -f docker-compose.yml config --format json | "$VENV/python" -c '
import json, sys
services = json.load(sys.stdin)["services"]
ports = services["dashboard"]["ports"]
if not ports or any(p.get("host_ip") != "127.0.0.1" for p in ports):
    sys.exit(f"check-deploy: docker-compose.yml publishes the dashboard beyond 127.0.0.1: {ports}")
# A web port that takes passwords over plain ws (WEB_PASSWORDS_WITHOUT_TLS=accept:
# published ports reach the container from the bridge, not its loopback)
# is for this machine only.
webs = 0
for name, svc in services.items():
    env = svc.get("environment") or {}
    if env.get("WEB_PORT") in (None, "", "off"):
        continue
    webs += 1
    web_port = env["WEB_PORT"]
    published = [p for p in svc.get("ports", []) if str(p.get("target")) == web_port]
    if not published:
        sys.exit(f"check-deploy: docker-compose.yml: {name} serves WEB_PORT {web_port} but does not publish it")
    if env.get("WEB_PASSWORDS_WITHOUT_TLS") == "accept" and any(p.get("host_ip") != "127.0.0.1" for p in published):
        sys.exit(f"check-deploy: docker-compose.yml: {name} takes passwords over plain ws beyond 127.0.0.1: {published}")
if not webs:
    sys.exit("check-deploy: docker-compose.yml serves no web client (WEB_PORT)")
'

step "hadolint Dockerfile Dockerfile.autoscaler"
"$VENV/hadolint" Dockerfile Dockerfile.autoscaler

step "ok"
