"""What `homelab up` deploys: the repository's prefect.yaml fitted to a cluster file (pure data, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homelab.errors import DeployConfigError
from homelab.inventory import load_inventory
from homelab_app.stack import PROJECT_DIR, fit_to_inventory, load_deploy_config

EXAMPLE = PROJECT_DIR / "examples" / "three-tier.yaml"


def test_repository_prefect_yaml_fitted_to_three_tier_cluster() -> None:
    config = load_deploy_config(PROJECT_DIR / "prefect.yaml")
    inv = load_inventory(EXAMPLE)
    fitted = fit_to_inventory(config, EXAMPLE, inv)
    by_name = {d["name"]: d for d in fitted["deployments"]}

    nodes = [n.name for n in inv.nodes]
    assert "recover-node" not in by_name
    assert sorted(n for n in by_name if n.startswith("recover-node-")) == sorted(f"recover-node-{n}" for n in nodes)
    for node in nodes:
        recover = by_name[f"recover-node-{node}"]
        assert recover["work_pool"] == {"name": "homelab", "work_queue_name": f"node-{node}"}
        assert recover["parameters"]["node"] == node
        [trigger] = recover["triggers"]
        assert trigger["match"] == {"prefect.resource.id": f"homelab.node.{node}"}
        assert trigger["expect"] == ["homelab.node.down"]
        assert trigger["name"] == f"recover-node-{node}-on-node-down"
    # Every deployment reads the cluster file by absolute path: workers run in the checkout.
    assert {d["parameters"]["inventory"] for d in fitted["deployments"]} == {str(EXAMPLE.resolve())}
    # The schedules and the other queues are the repository's, untouched.
    assert by_name["health-sweep"]["schedules"] == [{"interval": 300, "timezone": "UTC"}]
    assert by_name["health-sweep"]["work_pool"]["work_queue_name"] == "default"
    # The input is not changed in place: the next cluster file starts from the repository's file.
    assert [d["name"] for d in config["deployments"]].count("recover-node") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deployments: [\n  {name: a\n", "prefect.yaml:3: YAML syntax error"),
        ("name: x\n", "prefect.yaml:1: deployments: expected a list of deployments"),
        (
            "deployments:\n  - name: a\n",
            "prefect.yaml:2: deployments[0].entrypoint: every deployment needs a `entrypoint`",
        ),
        (
            "deployments:\n  - name: a\n    entrypoint: f.py:f\n    parameters: [1]\n",
            "prefect.yaml:4: deployments[0].parameters: expected a mapping",
        ),
    ],
    ids=["syntax", "no-deployments", "no-entrypoint", "bad-parameters"],
)
def test_broken_prefect_yaml_is_located(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    with pytest.raises(DeployConfigError) as caught:
        load_deploy_config(path)
    assert str(caught.value).replace(str(tmp_path) + "/", "").startswith(message), str(caught.value)
