#!/usr/bin/env bash
# Makes the one Secret the Helm chart reads every chatp credential from,
# with random passwords, once: an existing Secret is kept (its passwords are
# what PostgreSQL and Redis already know).
#
#   scripts/chart-secrets.sh NAME [NAMESPACE]           create it with kubectl
#   scripts/chart-secrets.sh NAME [NAMESPACE] --print   print it as YAML, for
#       a GitOps repository: seal or encrypt it first (kubeseal, SOPS);
#       never commit it as it is
#
# Then install with the three existingSecret values pointing at it (the
# keys of the three groups differ, so one Secret serves them all):
#
#   helm install RELEASE ./helm-chart/chat-app -n NAMESPACE \
#     --set postgresql.auth.existingSecret=NAME \
#     --set redis.auth.existingSecret=NAME \
#     --set dashboard.auth.existingSecret=NAME
#
# The passwords go to kubectl as files in a private temporary directory,
# never on a command line. KUBECTL overrides the kubectl binary.
set -euo pipefail

usage="usage: scripts/chart-secrets.sh NAME [NAMESPACE] [--print]"
name=${1:?$usage}
ns=${2:-default}
mode=${3:-create}
kubectl=${KUBECTL:-kubectl}

KEYS="postgres-password owner-password app-password reader-password
redis-chat-password redis-autoscaler-password redis-dashboard-password redis-admin-password
dashboard-password"

if [ "$mode" != --print ] && "$kubectl" -n "$ns" get secret "$name" >/dev/null 2>&1; then
    echo "chart-secrets: Secret $ns/$name exists; kept as it is" >&2
else
    umask 077
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    for key in $KEYS; do
        # 128 random bits as 32 hex digits: safe in a URL, an ACL file, a shell.
        od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/$key"
    done
    if [ "$mode" = --print ]; then
        "$kubectl" -n "$ns" create secret generic "$name" --from-file="$dir" --dry-run=client -o yaml
        exit 0
    fi
    "$kubectl" -n "$ns" create secret generic "$name" --from-file="$dir" >&2
fi
cat <<FLAGS
--set postgresql.auth.existingSecret=$name --set redis.auth.existingSecret=$name --set dashboard.auth.existingSecret=$name
FLAGS
