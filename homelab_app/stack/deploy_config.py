"""The deployments `homelab up` deploys: the repository's prefect.yaml, fitted to one cluster file.

Two changes, both pure data (the result is written out and passed to `prefect deploy`):

- every deployment's `inventory` parameter becomes the cluster file's absolute path, because a
  worker runs flows in the checkout, not where `homelab up` was typed;
- the `recover-node` deployment becomes one deployment per node, `recover-node-NODE`, on work
  queue `node-NODE`, whose trigger matches only that node's `homelab.node.down` events. Prefect's
  run-deployment action cannot choose a work queue (the run goes to its deployment's queue), so a
  per-node queue needs a per-node deployment. One worker serving every queue runs them all; with
  a worker per node (docs/scale-out.md) each node's recovery runs on the machine beside it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from homelab.errors import DeployConfigError, InventoryError, Problem
from homelab.inventory import Inventory
from homelab.yaml_source import SourceMap, load_yaml

__all__ = [
    "RECOVER_DEPLOYMENT",
    "WORK_POOL",
    "fit_to_inventory",
    "load_deploy_config",
    "node_queue",
    "recover_deployment_name",
]

WORK_POOL = "homelab"
RECOVER_DEPLOYMENT = "recover-node"


def node_queue(node: str) -> str:
    """The work queue of a node's recovery runs."""
    return f"node-{node}"


def recover_deployment_name(node: str) -> str:
    return f"{RECOVER_DEPLOYMENT}-{node}"


def load_deploy_config(path: Path) -> dict[str, Any]:
    """Read prefect.yaml and check what `up` relies on: a list of named deployments with entrypoints.

    Raises:
        DeployConfigError: the file is missing or not YAML, or a deployment lacks a name or entrypoint;
            each problem names the line.
    """
    try:
        data, source = load_yaml(path)
    except InventoryError as exc:
        raise DeployConfigError(exc.problems) from None
    problems = _check(data, source)
    if problems:
        raise DeployConfigError(problems)
    return dict(data)


def _check(data: Any, source: SourceMap) -> list[Problem]:
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list) or not data["deployments"]:
        return [source.problem(("deployments",), "expected a list of deployments")]
    problems: list[Problem] = []
    for index, deployment in enumerate(data["deployments"]):
        where = ("deployments", index)
        if not isinstance(deployment, dict):
            problems.append(source.problem(where, "expected a mapping"))
            continue
        for key in ("name", "entrypoint"):
            if not isinstance(deployment.get(key), str) or not deployment[key]:
                problems.append(source.problem((*where, key), f"every deployment needs a `{key}`"))
        if not isinstance(deployment.get("parameters", {}), dict):
            problems.append(source.problem((*where, "parameters"), "expected a mapping"))
    return problems


def fit_to_inventory(config: dict[str, Any], inventory_path: Path, inventory: Inventory) -> dict[str, Any]:
    """`config` with the cluster file's absolute path as parameter and one recovery deployment per node."""
    fitted = copy.deepcopy(config)
    deployments: list[dict[str, Any]] = []
    for deployment in fitted["deployments"]:
        params = deployment.setdefault("parameters", {})
        if "inventory" in params or deployment["name"] == RECOVER_DEPLOYMENT:
            params["inventory"] = str(inventory_path.resolve())
        if deployment["name"] == RECOVER_DEPLOYMENT:
            deployments += [_for_node(deployment, node.name) for node in inventory.nodes]
        else:
            deployments.append(deployment)
    fitted["deployments"] = deployments
    return fitted


def _for_node(template: dict[str, Any], node: str) -> dict[str, Any]:
    deployment = copy.deepcopy(template)
    deployment["name"] = recover_deployment_name(node)
    deployment["parameters"]["node"] = node
    deployment["tags"] = [*deployment.get("tags", []), f"node:{node}"]
    pool = deployment.setdefault("work_pool", {"name": WORK_POOL})
    pool["work_queue_name"] = node_queue(node)
    for trigger in deployment.get("triggers", []):
        trigger["name"] = f"{recover_deployment_name(node)}-on-node-down"
        trigger["match"] = {"prefect.resource.id": f"homelab.node.{node}"}
    return deployment
