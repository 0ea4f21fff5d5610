"""The official Docker SDK for Python, driven as a user drives it, one case per run.

Run by test/e2e/docker-sdk.test.ts against secretd and against a private Docker Swarm (the same
case, the same arguments), which compares what each prints:

    python3 docker_sdk_cases.py CASE '{"arg": ...}'

The target comes from the environment as `docker.from_env()` reads it (DOCKER_HOST, and for secretd
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH with a client certificate from `secretd ca issue-client`).
Prints one JSON line: {"ok": true, "value": ...} or, when the daemon refused, {"ok": false,
"status": HTTP status, "message": the daemon's message}. Anything else (a bug here, a connection
failure) is a traceback and a non-zero exit code.
"""
import json
import os
import sys

import docker
from docker.types import SecretReference, ServiceMode, UpdateConfig

# The API version these cases pin (the SDK's 5.x default); secretd and Docker both serve it.
# SDK_API_VERSION=auto leaves it to the SDK, which then asks GET /version first (its default).
API_VERSION = os.environ.get("SDK_API_VERSION", "1.41")
CASES = {}


def case(function):
    CASES[function.__name__] = function
    return function


@case
def secret_create(client, name, data, labels=None):
    secret = client.secrets.create(name=name, data=data, labels=labels or {})
    return {"id_length": len(secret.id)}


@case
def secret_list(client, prefix):
    return sorted(s.name for s in client.secrets.list(filters={"name": prefix}))


@case
def secret_inspect(client, name):
    secret = client.secrets.get(name)
    return {"Spec": secret.attrs["Spec"], "has_data": "Data" in secret.attrs["Spec"]}


@case
def secret_remove(client, name):
    return client.secrets.get(name).remove()


@case
def service_create(client, name, secret, target, replicas=None):
    """A service with one secret, replicated (`replicas`) or global (no `replicas`)."""
    secret_id = client.secrets.get(secret).id
    mode = ServiceMode("global") if replicas is None else ServiceMode("replicated", replicas=replicas)
    service = client.services.create(
        "busybox",
        command=["sh", "-c", "sleep 100000"],
        name=name,
        mode=mode,
        secrets=[SecretReference(secret_id, secret, filename=target, mode=0o400)],
    )
    spec = service.attrs["Spec"]
    return {"Mode": spec["Mode"], "Secrets": spec["TaskTemplate"]["ContainerSpec"]["Secrets"]}


@case
def service_running(client, name):
    """Tasks of the service desired and actually running."""
    tasks = client.services.get(name).tasks(filters={"desired-state": "running"})
    return sum(1 for task in tasks if task["Status"]["State"] == "running")


@case
def service_scale(client, name, replicas):
    service = client.services.get(name)
    result = service.scale(replicas)
    service.reload()
    return {"result": bool(result), "Mode": service.attrs["Spec"]["Mode"]}


@case
def service_update_config(client, name, parallelism, delay):
    """`update()` with an update config: the SDK's UpdateConfig sends FailureAction continue."""
    service = client.services.get(name)
    service.update(update_config=UpdateConfig(parallelism=parallelism, delay=delay))
    service.reload()
    return service.attrs["Spec"]["UpdateConfig"]


@case
def service_inspect_defaults(client, name):
    return client.api.inspect_service(name, insert_defaults=True)["Spec"]


@case
def service_status(client, name):
    """`GET /services?status=True`, as SDK 7.x's `services(status=True)` sends it (5.x lacks the argument)."""
    response = client.api._get(client.api._url("/services"), params={"filters": json.dumps({"name": [name]}), "status": True})
    return [service.get("ServiceStatus") for service in client.api._result(response, True)]


@case
def service_remove(client, name):
    return client.services.get(name).remove()


@case
def swarm_rotate(client, **flags):
    """`update_swarm()` through the model (`client.swarm.update`), with rotation flags sent as `True`."""
    before = client.api.inspect_swarm()["JoinTokens"]
    key_before = client.api.get_unlock_key()["UnlockKey"]
    client.swarm.reload()
    result = client.swarm.update(**flags)
    after = client.api.inspect_swarm()["JoinTokens"]
    key_after = client.api.get_unlock_key()["UnlockKey"]
    return {
        "result": result,
        "worker_changed": before["Worker"] != after["Worker"],
        "manager_changed": before["Manager"] != after["Manager"],
        "unlock_key_changed": key_before != key_after,
        "unlock_key_set": key_after != "",
    }


@case
def node_update(client, spec):
    """`Node.update()` with a spec as given (the SDK sends it as it is, any key case)."""
    node = client.nodes.list(filters={"role": "manager"})[0]
    result = node.update(spec)
    node.reload()
    return {"result": result, "Spec": node.attrs["Spec"]}


@case
def node_remove(client, node, force):
    """`remove_node(…, force=…)`: the SDK sends `?force=True` (or `False`)."""
    if node == "self":
        node = client.nodes.list(filters={"role": "manager"})[0].id
    return client.api.remove_node(node, force=force)


def main():
    name = sys.argv[1]
    arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        client = docker.from_env(version=API_VERSION, timeout=60)
        result = {"ok": True, "value": CASES[name](client, **arguments)}
    except docker.errors.APIError as error:
        result = {"ok": False, "status": error.status_code, "message": error.explanation}
    except docker.errors.DockerException as error:
        # What the SDK raises when its own GET /version is refused: the client was never made.
        result = {"ok": False, "status": 0, "message": str(error)}
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
