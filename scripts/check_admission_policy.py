"""Tests the autoscaler's ValidatingAdmissionPolicy (CEL) on sample requests.

usage: check_admission_policy.py <rendered.yaml>

Evaluates the rendered policy's matchConditions, variables and validations
with cel-python (the CEL of Kubernetes, less its extension libraries, which
the policy does not use) on pod UPDATE requests: the autoscaler setting
controller.kubernetes.io/pod-deletion-cost must be allowed; the autoscaler
changing anything else (image, labels, other annotations, finalizers,
owners, a subresource) must be refused; other users are not matched.
Run by scripts/check-deploy.sh; exits non-zero with one line per problem.
"""

import copy
import sys

import celpy
import yaml

COST = "controller.kubernetes.io/pod-deletion-cost"

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
policies = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
problems = []
if len(policies) != 1 or len(bindings) != 1:
    sys.exit(f"check_admission_policy: expected one policy and one binding, got {len(policies)} and {len(bindings)}")
policy, binding = policies[0]["spec"], bindings[0]["spec"]
if binding["policyName"] != policies[0]["metadata"]["name"] or binding["validationActions"] != ["Deny"]:
    problems.append("the binding does not deny with the policy")
if policy.get("failurePolicy") != "Fail":
    problems.append("failurePolicy is not Fail: an expression error would let the change through")

env = celpy.Environment()


def run(expr, activation):
    return env.program(env.compile(expr)).evaluate(activation)


def admitted(request, obj, old):
    """None if the policy does not apply, else (allowed, failed messages)."""
    act = {"request": celpy.json_to_cel(request), "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old)}
    for cond in policy.get("matchConditions", []):
        if not run(cond["expression"], act):
            return None
    variables = {}
    for var in policy.get("variables", []):
        variables[var["name"]] = run(var["expression"], {**act, "variables": celpy.celtypes.MapType(variables)})
    act["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
    failed = []
    for v in policy["validations"]:
        result = run(v["expression"], act)
        if isinstance(result, celpy.CELEvalError) or result is not celpy.celtypes.BoolType(True) and result != True:  # noqa: E712
            failed.append(v.get("message", v["expression"]))
    return (not failed, failed)


sa_user = policy["matchConditions"][0]["expression"].split("'")[1]
namespace = sa_user.split(":")[2]
old_pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "chat-1",
        "namespace": namespace,
        "labels": {"app.kubernetes.io/component": "chat-server", "pod-template-hash": "abc"},
        "annotations": {"prometheus.io/scrape": "true"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "chat-abc", "uid": "u1", "controller": True}],
    },
    "spec": {"containers": [{"name": "chat-server", "image": "chatp/chat-server:0.1.0"}]},
}


def changed(f, base=old_pod):
    new = copy.deepcopy(base)
    f(new)
    return new


def set_cost(p, v="3"):
    p["metadata"].setdefault("annotations", {})[COST] = v


bare_pod = changed(lambda p: p["metadata"].pop("annotations"))
with_cost = changed(set_cost)


def req(user=sa_user, sub=""):
    return {"operation": "UPDATE", "userInfo": {"username": user}, "subResource": sub, "namespace": namespace}


allowed = {
    "set the deletion cost": (req(), changed(set_cost), old_pod),
    "change the deletion cost": (req(), changed(lambda p: set_cost(p, "-5"), with_cost), with_cost),
    "remove the deletion cost": (req(), old_pod, with_cost),
    "set the cost on a pod without annotations": (req(), changed(set_cost, bare_pod), bare_pod),
}
refused = {
    "change the image": (req(), changed(lambda p: (set_cost(p), p["spec"]["containers"][0].update(image="evil:1"))), old_pod),
    "add a container": (req(), changed(lambda p: p["spec"]["containers"].append({"name": "x", "image": "evil:1"})), old_pod),
    "add a label": (req(), changed(lambda p: p["metadata"]["labels"].update(app="other")), old_pod),
    "remove a label": (req(), changed(lambda p: p["metadata"]["labels"].pop("pod-template-hash")), old_pod),
    "change another annotation": (req(), changed(lambda p: p["metadata"]["annotations"].update({"prometheus.io/scrape": "false"})), old_pod),
    "add another annotation": (req(), changed(lambda p: (set_cost(p), p["metadata"]["annotations"].update(x="y"))), old_pod),
    "remove another annotation": (req(), changed(lambda p: p["metadata"].pop("annotations")), old_pod),
    "add a finalizer": (req(), changed(lambda p: p["metadata"].update(finalizers=["x/keep"])), old_pod),
    "drop the owner": (req(), changed(lambda p: p["metadata"].pop("ownerReferences")), old_pod),
    "a subresource": (req(sub="ephemeralcontainers"), changed(set_cost), old_pod),
}
for what, (r, new, old) in allowed.items():
    out = admitted(r, new, old)
    if out is None or not out[0]:
        problems.append(f"refused, should be allowed: the autoscaler may {what} ({out})")
for what, (r, new, old) in refused.items():
    out = admitted(r, new, old)
    if out is None or out[0]:
        problems.append(f"allowed, should be refused: the autoscaler must not {what}")
# Other users (the ReplicaSet controller, an operator) are not this policy's business.
other = "system:serviceaccount:kube-system:replicaset-controller"
if admitted(req(user=other), changed(lambda p: p["spec"]["containers"][0].update(image="x:2")), old_pod) is not None:
    problems.append("the policy applies to users other than the autoscaler")
if binding["matchResources"]["namespaceSelector"]["matchLabels"] != {"kubernetes.io/metadata.name": namespace}:
    problems.append("the binding is not limited to the release's namespace")

for p in problems:
    print(f"check_admission_policy: {p}", file=sys.stderr)
print(f"check_admission_policy: {len(allowed)} allowed and {len(refused) + 1} refused or unmatched samples checked")
sys.exit(1 if problems else 0)
