"""`homelab up` and the cluster file's `notify:`: the alert automations follow the file, through the real CLI.

A real embedded server, `prefect deploy` and a worker, as a user runs them. The first `up` cannot
find the block yet (the embedded server only exists once `up` has started it): it succeeds and
names `notify.blocks[0]`. Once the block is saved, `up` creates one automation per event kind;
without `notify:` it removes them. The worker's scheduled sweeps find the two nodes down meanwhile,
so the automations really send: to a loopback receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab_app.demo.receiver import Receiver, running_receiver
from homelab_app.stack.prefect_api import open_client
from tests.fixtures.net import free_port
from tests.stack_util import api, cluster_file, homelab, user_env

KINDS = sorted(["homelab-alert-node-down", "homelab-alert-recovery-failed", "homelab-alert-recovered"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def _set_notify(cluster: Path, notify: dict[str, Any] | None) -> None:
    spec = yaml.safe_load(cluster.read_text())
    spec.pop("notify", None)
    if notify is not None:
        spec["notify"] = notify
    cluster.write_text(yaml.safe_dump(spec))


def _alert_names(api_url: str) -> list[str]:
    return sorted(a["name"] for a in api(api_url, "automations/filter", {}) if a["name"].startswith("homelab-alert-"))


def test_up_follows_notify_and_names_a_missing_block(tmp_path: Path, receiver: Receiver) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    cluster = cluster_file(tmp_path, ["alpha", "beta"])
    _set_notify(cluster, {"blocks": ["custom-webhook/phone"]})
    env = user_env(tmp_path / "user-prefect-home")
    port = str(free_port())
    try:
        first = homelab("up", "--port", port, env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-4000:]
        assert (
            f"{cluster}: notify.blocks[0]: the Prefect server has no custom-webhook block named 'phone'" in first.stderr
        )
        api_url = f"http://127.0.0.1:{port}/api"
        assert _alert_names(api_url) == []

        block = CustomWebhookNotificationBlock(
            name="phone", url=f"{receiver.url}/phone", json_data={"subject": "{{subject}}", "body": "{{body}}"}
        )
        with open_client(api_url):
            block.save("phone")
        second = homelab("up", "--port", port, "--json", env=env, cwd=tmp_path)
        assert second.returncode == 0, second.stderr[-4000:]
        alerts = json.loads(second.stdout)["alerts"]
        assert sorted(alerts["created"]) == KINDS and alerts["problems"] == []
        assert _alert_names(api_url) == KINDS

        _set_notify(cluster, None)
        third = homelab("up", "--port", port, "--json", env=env, cwd=tmp_path)
        assert third.returncode == 0, third.stderr[-4000:]
        assert sorted(json.loads(third.stdout)["alerts"]["removed"]) == KINDS
        assert _alert_names(api_url) == []
    finally:
        homelab("down", env=env, cwd=tmp_path)
