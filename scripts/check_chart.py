"""Checks what `helm lint` cannot see in the rendered chat-app chart.

usage: check_chart.py <rendered.yaml> <default|flipped|external> <repo root>

Run by scripts/check-deploy.sh on `helm template` output. Exits non-zero
with one line per problem.
"""

import re
import sys

import yaml

rendered, variant, root = sys.argv[1], sys.argv[2], sys.argv[3]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []


def check(cond, what):
    if not cond:
        problems.append(f"{variant}: {what}")


def of_kind(kind):
    return [d for d in docs if d["kind"] == kind]


def component(kind, name):
    found = [d for d in of_kind(kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == name]
    return found[0] if found else None


def pod_specs():
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# Every pod: non-root, read-only root filesystem, no capabilities; only the
# autoscaler gets a ServiceAccount token.
for name, spec in pod_specs():
    check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{name} may run as root")
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']} has a writable root filesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']} allows privilege escalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']} keeps capabilities")
    wants_token = "serviceAccountName" in spec
    check(spec.get("automountServiceAccountToken") is wants_token, f"{name}: token mounted only for the autoscaler and dashboard")
    check(not wants_token or name.endswith(("-autoscaler", "-dashboard")), f"{name} has a ServiceAccount token")

# The chat server: its port, Service, graceful stop.
chat = component("Deployment", "chat-server")
check(chat is not None, "no chat-server Deployment")
chat_name = chat["metadata"]["name"]
chat_spec = chat["spec"]["template"]["spec"]
container = chat_spec["containers"][0]
port = int(container["args"][0])
env = env_of(container)
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
svc = component("Service", "chat-server")
svc_targets = [p["targetPort"] for p in svc["spec"]["ports"]]
plaintext = env.get("PLAINTEXT", "on") == "on"
if plaintext:
    check(ports.get("chat") == port, "chat port is not the one chat_server listens on")
    check(svc_targets[0] == "chat", "Service does not target the chat port")
else:
    check("chat" not in ports and "chat" not in svc_targets, "plaintext port exposed though PLAINTEXT=off")
# TLS: off by default; on, the listener, its port, the Service port and the
# mounted Secret (from cert-manager's Certificate or named in values) agree.
certs = of_kind("Certificate")
if variant == "default":
    check("TLS_CERT_FILE" not in env and "chat-tls" not in ports and not certs, "TLS on by default")
    check(env.get("REGISTRATION") == "open", "registration not open by default")
else:
    check(str(ports.get("chat-tls")) == env.get("TLS_PORT"), "chat-tls port is not TLS_PORT")
    check("chat-tls" in svc_targets, "Service has no TLS port")
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    check(env.get("TLS_CERT_FILE", "").startswith(mounts.get("tls", "?") + "/")
          and env.get("TLS_KEY_FILE", "").startswith(mounts.get("tls", "?") + "/"), "certificate files not in the mounted Secret")
    secret = [v["secret"]["secretName"] for v in chat_spec.get("volumes", []) if v["name"] == "tls"]
    if variant == "flipped":
        check(not plaintext, "flipped values keep the plaintext port")
        check(env.get("REGISTRATION") == "invite", "registration value not passed")
        check(len(certs) == 1 and secret == [certs[0]["spec"]["secretName"]], "pods do not mount the Certificate's Secret")
        check(certs and certs[0]["spec"]["dnsNames"] == ["chat.example.org"], "Certificate names not from values")
    else:
        check(plaintext and not certs and secret == ["team-chat-cert"], "tls.secretName not mounted")
metrics = [p for p in container["ports"] if p["name"] == "metrics"]
check(len(metrics) == 1 and str(metrics[0]["containerPort"]) == env_of(container)["METRICS_PORT"],
      "metrics port is not the one chat_server serves /readyz and /metrics on")
check(chat["spec"]["template"]["metadata"]["annotations"].get("prometheus.io/port") == str(metrics[0]["containerPort"]) if metrics else False,
      "Prometheus scrape annotation does not point at the metrics port")
if variant == "default":
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is not /readyz")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness is not /healthz")
pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
check(chat_spec["terminationGracePeriodSeconds"] >= pre_stop + 10, "grace period leaves no time to close connections")
check(env["HOSTNAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}, "chat pods are not named by their pod name")
# Built-in stores are waited for; external ones are not.
waits = [c["name"] for c in chat_spec.get("initContainers", [])]
expected_waits = [] if variant == "external" else ["wait-for-postgresql", "wait-for-redis"]
check(waits == expected_waits, f"chat pods wait for {waits}, expected {expected_waits}")

autoscaler = component("Deployment", "autoscaler")
if variant == "external":
    check(autoscaler is None, "autoscaler rendered though disabled")
    check(chat["spec"].get("replicas") == 3, "chatServer.replicas not applied without the autoscaler")
    check(env["DB_HOST"] == "db.example.internal" and env["DB_PORT"] == "6432", "externalDatabase not used")
    check(env["REDIS_HOST"] == "redis.example.internal", "externalRedis not used")
    check(not of_kind("StatefulSet") and not component("Deployment", "redis"), "built-in stores rendered though disabled")
else:
    # The autoscaler owns replicas: the chart must not set them.
    check("replicas" not in chat["spec"], "chat-server replicas set by the chart although the autoscaler owns them")
    as_spec = autoscaler["spec"]["template"]["spec"]
    as_env = env_of(as_spec["containers"][0])
    check(as_env["DEPLOYMENT_NAME"] == chat_name, "autoscaler scales another deployment")
    check(as_env["NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, "autoscaler NAMESPACE not the pod's")
    check(env.get("REDIS_PASSWORD") == as_env.get("REDIS_PASSWORD"), "chat pods and autoscaler see different Redis")
    roles = [r for r in of_kind("Role") if r["metadata"]["labels"]["app.kubernetes.io/component"] == "autoscaler"]
    if variant == "default":
        check(len(roles) == 1, "expected one Role for the autoscaler")
        rules = roles[0]["rules"] if roles else []
        least = [
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": [chat_name], "verbs": ["get", "patch"]},
            # pod-deletion-cost annotations before a scale-down (names unknown in advance)
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["patch"]},
        ]
        check(rules == least, f"autoscaler Role is not the least that works: {rules}")
        binding = [b for b in of_kind("RoleBinding") if b["metadata"]["labels"]["app.kubernetes.io/component"] == "autoscaler"][0]
        check(binding["roleRef"]["name"] == roles[0]["metadata"]["name"], "RoleBinding binds another Role")
        check(binding["subjects"][0]["name"] == as_spec["serviceAccountName"], "RoleBinding binds another ServiceAccount")
        check(as_spec["serviceAccountName"] in [a["metadata"]["name"] for a in of_kind("ServiceAccount")], "ServiceAccount missing")
        check(len(of_kind("PodDisruptionBudget")) == 1, "no PodDisruptionBudget")
        check(svc["spec"]["type"] == "NodePort" and svc["spec"]["ports"][0]["nodePort"] == 30080, "not NodePort 30080")
        check(svc["spec"]["ports"][0]["port"] == 8080 and port == 8080, "not port 8080")
        secret = of_kind("Secret")[0]
        check(set(secret["data"]) == {"db-password", "redis-password", "dashboard-password"}, "generated Secret lacks a password")
    else:
        check(not of_kind("Role") and not of_kind("RoleBinding"), "rbac.create=false ignored")
        check(as_spec["serviceAccountName"] not in [a["metadata"]["name"] for a in of_kind("ServiceAccount")], "serviceAccount.create=false ignored")
        check(as_spec["serviceAccountName"] == "chat-ops", "serviceAccount.name ignored")
        check(as_env["MIN_REPLICAS"] == "2" and as_env["SCALE_DOWN_DELAY"] == "0", "autoscaler values not passed")

    # The schema ConfigMap is the repository's schema.sql.
    schema = open(f"{root}/schema.sql").read()
    maps = [d for d in of_kind("ConfigMap") if "01-schema.sql" in d.get("data", {})]
    check(len(maps) == 1 and maps[0]["data"]["01-schema.sql"] == schema.rstrip("\n"), "initdb ConfigMap differs from schema.sql")

# The dashboard: read-only on the chat Deployment and its pods, reached
# through a ClusterIP Service, the chat-server image's chat_dashboard.
dash = component("Deployment", "dashboard")
if variant == "external":
    check(dash is None, "dashboard rendered though disabled")
else:
    dspec = dash["spec"]["template"]["spec"]
    dc = dspec["containers"][0]
    check(dc["command"] == ["/usr/local/bin/chat_dashboard"] and dc["image"] == container["image"], "dashboard is not the chat image's chat_dashboard")
    denv = env_of(dc)
    check(denv["DEPLOYMENT_NAME"] == chat_name and denv["DB_HOST"] == env["DB_HOST"], "dashboard looks at another deployment or database")
    check(denv.get("REDIS_PASSWORD") == env.get("REDIS_PASSWORD"), "dashboard sees another Redis")
    # A login from a Secret, and the Service's own names in the Host allow-list.
    dpass = [e for e in dc["env"] if e["name"] == "DASHBOARD_PASSWORD"]
    check(len(dpass) == 1 and dpass[0]["valueFrom"]["secretKeyRef"]["key"] == "dashboard-password", "dashboard without a login")
    check(dash["metadata"]["name"] in denv.get("DASHBOARD_ALLOWED_HOSTS", "").split(","), "dashboard refuses its Service's name")
    if variant == "flipped":
        check(dpass[0]["valueFrom"]["secretKeyRef"]["name"] == "chat-dashboard" and denv["DASHBOARD_USER"] == "ops", "dashboard.auth values ignored")
        check("dashboard.example.org" in denv["DASHBOARD_ALLOWED_HOSTS"].split(","), "dashboard.allowedHosts ignored")
    dsvc = component("Service", "dashboard")
    check(dsvc["spec"]["type"] == "ClusterIP" and dsvc["spec"]["ports"][0]["port"] == int(denv["DASHBOARD_PORT"]), "dashboard Service is not ClusterIP on its port")
    droles = [r for r in of_kind("Role") if r["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard"]
    if variant == "default":
        verbs = {v for r in droles for rule in r["rules"] for v in rule["verbs"]}
        check(len(droles) == 1 and verbs <= {"get", "list"}, f"dashboard Role is not read-only: {verbs}")
        check(droles and {"resources": ["deployments"], "apiGroups": ["apps"], "resourceNames": [chat_name], "verbs": ["get"]} in droles[0]["rules"], "dashboard cannot read the chat Deployment")
    else:
        check(not droles, "dashboard.rbac.create=false ignored")
monitors = of_kind("PodMonitor")
check(len(monitors) == (1 if variant == "flipped" else 0), "PodMonitor only when metrics.podMonitor.enabled")

# `helm test` expects the server's first line, as src/protocol.rs spells it.
token = re.search(r'pub const AUTH_REQUEST: &str = "([^"]+)"', open(f"{root}/src/protocol.rs").read())
test_pods = [d for d in of_kind("Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
check(len(test_pods) == 1, "no helm test pod")
test_script = test_pods[0]["spec"]["containers"][0]["command"][-1] if test_pods else ""
if plaintext:
    check(token is not None and f'"{token.group(1)}"' in test_script, "helm test does not expect AUTH_REQUEST")
else:
    check('"$TLS_PORT"' in test_script, "helm test does not try the TLS port")

for p in problems:
    print(f"check_chart: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
