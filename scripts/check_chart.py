"""Checks what `helm lint` cannot see in the rendered chat-app chart.

usage: check_chart.py <rendered.yaml> <default|flipped|external|ha|web-ingress> <repo root>

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
if variant in ("default", "web-ingress"):
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
    elif variant in ("external", "ha"):
        check(plaintext and not certs and secret == ["team-chat-cert"], "tls.secretName not mounted")
metrics = [p for p in container["ports"] if p["name"] == "metrics"]
check(len(metrics) == 1 and str(metrics[0]["containerPort"]) == env_of(container)["METRICS_PORT"],
      "metrics port is not the one chat_server serves /readyz and /metrics on")
check(chat["spec"]["template"]["metadata"]["annotations"].get("prometheus.io/port") == str(metrics[0]["containerPort"]) if metrics else False,
      "Prometheus scrape annotation does not point at the metrics port")
if variant == "default":
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is not /readyz")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness is not /healthz")
# The web port (issue 27): on unless web.enabled is false (flipped), its own
# ClusterIP Service, WEB_PASSWORDS_WITHOUT_TLS "refuse" unless an Ingress
# terminates TLS in front of a plain port (web-ingress: "auto" accepts).
web_svc = component("Service", "web")
web_svc_name = web_svc["metadata"]["name"] if web_svc else None
ingresses = of_kind("Ingress")
if variant == "flipped":
    check("web" not in ports and not any(k.startswith("WEB_") for k in env) and web_svc is None and not ingresses,
          "web port, Service or Ingress rendered though web.enabled is false")
else:
    check(str(ports.get("web")) == env.get("WEB_PORT"), "web port is not WEB_PORT")
    check(len(set(ports.values())) == len(ports), f"two container ports share a number: {ports}")
    check(web_svc is not None and web_svc["spec"]["type"] == "ClusterIP"
          and [p["targetPort"] for p in web_svc["spec"]["ports"]] == ["web"]
          and web_svc["spec"]["selector"] == chat["spec"]["selector"]["matchLabels"],
          "web Service is not a ClusterIP to the chat pods' web port")
    check(web_svc is None or "web" not in svc_targets, "web port also on the chat Service (a node port by default)")
    tls_on = "TLS_CERT_FILE" in env
    check(web_svc is None or web_svc["spec"]["ports"][0].get("appProtocol") == ("https" if tls_on else "http"),
          "web Service's appProtocol is not the pod's scheme")
    expected = "accept" if variant == "web-ingress" else "refuse"
    check(env.get("WEB_PASSWORDS_WITHOUT_TLS") == expected, f"WEB_PASSWORDS_WITHOUT_TLS is {env.get('WEB_PASSWORDS_WITHOUT_TLS')}, expected {expected}")
    # Readiness and liveness stay on the metrics port (values.yaml says why).
    for probe in ("readinessProbe", "livenessProbe"):
        if probe in container:
            check(container[probe].get("httpGet", {}).get("port") == "metrics", f"{probe} is not on the metrics port")
    if variant == "web-ingress":
        check(env.get("WEB_ALLOWED_ORIGINS") == "https://chat.example.com",
              "the Ingress's address is not the pods' only allowed origin")
        check(len(ingresses) == 1, "no Ingress though web.ingress.enabled")
        if ingresses:
            ing = ingresses[0]
            rule = ing["spec"]["rules"][0]
            backend = rule["http"]["paths"][0]["backend"]["service"]
            check(rule.get("host") == "chat.example.com" and rule["http"]["paths"][0]["path"] == "/", "Ingress host or path not from values")
            check(backend == {"name": web_svc_name, "port": {"name": "web"}}, f"Ingress backend is {backend}")
            check(ing["spec"].get("tls") == [{"hosts": ["chat.example.com"], "secretName": "chat-example-com-tls"}], "Ingress TLS not from values")
            check(ing["spec"].get("ingressClassName") == "nginx", "ingressClassName not from values")
            notes = ing["metadata"].get("annotations", {})
            check(notes.get("nginx.ingress.kubernetes.io/proxy-read-timeout") == "3600"
                  and notes.get("nginx.ingress.kubernetes.io/proxy-send-timeout") == "3600"
                  and notes.get("cert-manager.io/cluster-issuer") == "letsencrypt", f"Ingress annotations: {notes}")
            check("nginx.ingress.kubernetes.io/backend-protocol" not in notes, "HTTPS to a plain web port")
            check(not any("affinity" in k for k in notes), "session affinity on the Ingress")
    else:
        check(not ingresses, "an Ingress though web.ingress.enabled is false")
pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
check(chat_spec["terminationGracePeriodSeconds"] >= pre_stop + 10, "grace period leaves no time to close connections")
check(env["HOSTNAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}, "chat pods are not named by their pod name")
# Built-in stores are waited for; external ones are not.
waits = [c["name"] for c in chat_spec.get("initContainers", [])]
expected_waits = [] if variant in ("external", "ha") else ["wait-for-postgresql", "wait-for-redis"]
check(waits == expected_waits, f"chat pods wait for {waits}, expected {expected_waits}")

# Highly available stores (ci/ha-values.yaml): every pod that talks to Redis
# finds the master through the sentinels, and every pod that talks to
# PostgreSQL lists both Services and wants the primary.
if variant == "ha":
    for name, spec in pod_specs():
        for c in spec["containers"]:
            e = env_of(c)
            if "REDIS_KEY_PREFIX" in e:
                check(e.get("REDIS_SENTINELS") == "chat-redis:26379" and e.get("REDIS_MASTER_NAME") == "mymaster",
                      f"{name}/{c['name']} does not find Redis through the sentinels")
                check("REDIS_HOST" not in e, f"{name}/{c['name']} also names a Redis host")
            if "DB_HOST" in e:
                check(e["DB_HOST"] == "chat-pg-rw,chat-pg-r" and e.get("DB_TARGET_SESSION_ATTRS") == "read-write",
                      f"{name}/{c['name']} does not list the PostgreSQL hosts for the primary")

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
    check(env.get("REDIS_HOST") == as_env.get("REDIS_HOST") and env.get("REDIS_KEY_PREFIX") == as_env.get("REDIS_KEY_PREFIX"),
          "chat pods and autoscaler see different Redis")
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
        # ci/secrets-values.yaml: every credential in the operator's Secrets.
        check(not of_kind("Secret"), "a Secret rendered although every existingSecret is set")
    elif variant == "flipped":
        check(not of_kind("Role") and not of_kind("RoleBinding"), "rbac.create=false ignored")
        check(as_spec["serviceAccountName"] not in [a["metadata"]["name"] for a in of_kind("ServiceAccount")], "serviceAccount.create=false ignored")
        check(as_spec["serviceAccountName"] == "chat-ops", "serviceAccount.name ignored")
        check(as_env["MIN_REPLICAS"] == "2" and as_env["SCALE_DOWN_DELAY"] == "0", "autoscaler values not passed")

# The initdb ConfigMap runs files/roles.sql, passwords through \getenv.
if of_kind("StatefulSet"):
    roles_sql = open(f"{root}/helm-chart/chat-app/files/roles.sql").read()
    maps = [d for d in of_kind("ConfigMap") if "roles.sql" in d.get("data", {})]
    check(len(maps) == 1 and maps[0]["data"]["roles.sql"] == roles_sql.rstrip("\n"), "initdb ConfigMap differs from files/roles.sql")
    init = maps[0]["data"].get("10-chatp-roles.sh", "") if maps else ""
    check(all(f"\\getenv {r}_password CHATP_{r.upper()}_PASSWORD" in init for r in ("owner", "app", "reader"))
          and "PASSWORD\"" not in init.split("psql", 1)[-1], "initdb script passes passwords on psql's command line")

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
    check(denv.get("REDIS_HOST") == env.get("REDIS_HOST") and denv.get("REDIS_KEY_PREFIX") == env.get("REDIS_KEY_PREFIX"),
          "dashboard sees another Redis")
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
    elif variant == "flipped":
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
web_tests = [c for p in test_pods for c in p["spec"]["containers"] if c["name"] == "web"]
if "web" in ports:
    check(len(web_tests) == 1, "helm test does not try the web port")
    if web_tests:
        wenv = env_of(web_tests[0])
        check(web_svc is not None and wenv.get("WEB_HOST") == web_svc_name and wenv.get("WEB_PORT") == str(web_svc["spec"]["ports"][0]["port"]),
              "helm test tries another web Service or port")
        if "TLS_CERT_FILE" not in env:
            check(token is not None and f'"{token.group(1)}"' in web_tests[0]["command"][-1] and "101 " in web_tests[0]["command"][-1],
                  "helm test does not expect the WebSocket upgrade and AUTH_REQUEST")
else:
    check(not web_tests, "helm test tries a web port that is off")


# Least privilege (issue 25). Who holds which credential: every secretKeyRef
# of every pod, by key.
def secret_keys(spec):
    keys = set()
    for c in spec["containers"] + spec.get("initContainers", []):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                keys.add(ref["key"])
    return keys


holders = {}
for name, spec in pod_specs():
    for key in secret_keys(spec):
        holders.setdefault(key, set()).add(name.rsplit("-", 1)[-1] if not name.endswith("-chat-server") else "chat-server")


def held_by(key, allowed):
    got = holders.get(key, set())
    check(got <= set(allowed), f"{key} reaches {sorted(got - set(allowed))}, only {allowed} may hold it")


held_by("postgres-password", ["postgresql"])
held_by("owner-password", ["chat-server", "postgresql"])
held_by("app-password", ["chat-server", "postgresql"])
held_by("reader-password", ["dashboard", "postgresql"])
for user, pod in [("chat", "chat-server"), ("autoscaler", "autoscaler"), ("dashboard", "dashboard"), ("admin", None)]:
    held_by(f"redis-{user}-password", [p for p in (pod, "redis") if p])
held_by("dashboard-password", ["dashboard"])
# No secret on a command line: no Kubernetes $(VAR) expansion in any args or command.
for name, spec in pod_specs():
    for c in spec["containers"] + spec.get("initContainers", []):
        words = " ".join(map(str, c.get("args", []) + c.get("command", [])))
        check(not re.search(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", words) and "requirepass" not in words, f"{name}/{c['name']} puts a variable or password on its command line")
# The database roles: the built-in PostgreSQL's superuser is `postgres`,
# chat pods use the app role (and the owner for migrations), the dashboard
# the reader.
check(env.get("DB_USER") != env.get("DB_MIGRATION_USER") and env.get("DB_MIGRATION_USER"), "chat pods migrate as their own DML role")
pg = component("StatefulSet", "postgresql")
if pg:
    penv = env_of(pg["spec"]["template"]["spec"]["containers"][0])
    check(penv["POSTGRES_USER"] == "postgres", "the chart's PostgreSQL superuser is chatp's role")
    check(penv["POSTGRES_USER"] not in (env["DB_USER"], env.get("DB_MIGRATION_USER")), "chat pods connect as the superuser")
if dash is not None:
    check(denv["DB_USER"] not in (env["DB_USER"], env.get("DB_MIGRATION_USER")), "the dashboard does not use the reader role")
# Redis: each component its own ACL user; the file the chart serves is
# files/redis-users.acl; the Redis gets it as aclfile.
acl_file = open(f"{root}/helm-chart/chat-app/files/redis-users.acl").read()
redis = component("Deployment", "redis")
users = {}
for d in [chat, autoscaler, dash]:
    if d is not None:
        users[d["metadata"]["labels"]["app.kubernetes.io/component"]] = env_of(d["spec"]["template"]["spec"]["containers"][0]).get("REDIS_USERNAME")
if variant == "flipped":
    check(set(users.values()) == {None}, "REDIS_USERNAME set although redis.auth.enabled is false")
else:
    check(users == {k: v for k, v in {"chat-server": "chat", "autoscaler": "autoscaler", "dashboard": "dashboard"}.items() if k in users},
          f"components do not connect as their own Redis users: {users}")
    for u in users.values():
        check(f"user {u} on " in acl_file, f"Redis user {u} is not in files/redis-users.acl")
if redis and variant != "flipped":
    rspec = redis["spec"]["template"]["spec"]
    check("--aclfile" in rspec["containers"][0]["args"], "Redis runs without the ACL file")
    acl_maps = [d for d in of_kind("ConfigMap") if "redis-users.acl" in d.get("data", {})]
    check(len(acl_maps) == 1 and acl_maps[0]["data"]["redis-users.acl"] == acl_file.rstrip("\n"), "the ACL ConfigMap is not files/redis-users.acl")
    acl_vol = [v for v in rspec["volumes"] if v["name"] == "acl"]
    check(acl_vol and acl_vol[0]["emptyDir"].get("medium") == "Memory", "the filled ACL file is not in memory only")

# NetworkPolicies: on by default; chat ports from anywhere, the stores only
# from chatp's pods, ops ports from the namespace and monitoring.
policies = {d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: d["spec"] for d in of_kind("NetworkPolicy")}
ns_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "chat-app"}}}
mon_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def pods_of(rule):
    return sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule.get("from", []) if "podSelector" in p)


for name, spec in pod_specs():
    comp = next((d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["metadata"]["name"] == name), None)
    if comp in ("test",):
        continue
    check(comp in policies, f"{name} has no NetworkPolicy")
for comp, spec in policies.items():
    check(spec["policyTypes"] == ["Ingress"], f"{comp} policy is not an ingress policy")
    rules = spec["ingress"]
    open_ports = sorted(p["port"] for r in rules if "from" not in r for p in r["ports"])
    # The web port from anywhere as the chat ports, but for web-ingress
    # (networkPolicy.webFrom: the ingress controller's namespace).
    web_open = "web" in ports and variant != "web-ingress"
    expected_open = sorted((["chat"] if plaintext else []) + (["chat-tls"] if "chat-tls" in ports else [])
                           + (["web"] if web_open else [])) if comp == "chat-server" else []
    check(open_ports == expected_open, f"{comp}: ports open to anyone {open_ports}, expected {expected_open}")
    for r in rules:
        if "from" not in r:
            continue
        rule_ports = [p["port"] for p in r["ports"]]
        if rule_ports == ["metrics"]:
            check(r["from"] == [ns_peer, mon_peer], f"{comp}: metrics from {r['from']}")
        elif comp == "chat-server" and rule_ports == ["web"]:
            ingress_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
            check(variant == "web-ingress" and r["from"] == [ns_peer, ingress_peer], f"web port from {r['from']}")
        elif comp == "dashboard":
            extra = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}] if variant == "flipped" else []
            check(rule_ports == ["http"] and r["from"] == [ns_peer] + extra, f"dashboard from {r['from']}")
        elif comp == "postgresql":
            check(rule_ports == ["postgresql"] and pods_of(r) == ["chat-server", "dashboard"] and len(r["from"]) == 2, f"postgresql from {r['from']}")
        elif comp == "redis":
            check(rule_ports == ["redis"] and pods_of(r) == ["autoscaler", "chat-server", "dashboard"] and len(r["from"]) == 3, f"redis from {r['from']}")
        else:
            check(False, f"{comp}: unexpected rule {r}")
if variant == "external":
    check(not ({"postgresql", "redis"} & set(policies)), "policies for stores that are not in the release")

# No value that changes between renders: nothing random, nothing read back.
import glob
for path in glob.glob(f"{root}/helm-chart/chat-app/templates/**/*", recursive=True):
    if path.endswith((".yaml", ".tpl", ".txt")):
        text = open(path).read()
        for fn in ("lookup", "randAlphaNum", "randAlpha", "randAscii", "randNumeric", "uuidv4", "genPrivateKey", "now"):
            check(not re.search(r"[\s(]" + fn + r"\s", text), f"{path} calls {fn}: its render changes between runs")

for p in problems:
    print(f"check_chart: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
