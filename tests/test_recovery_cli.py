"""`homelab recover` runs the core recovery loop in its own process, with no Prefect at all.

The command runs as a person runs it (a child process, HOME in a fresh folder, no PREFECT_*
settings), wrapped so that it reports, as it exits, which Prefect modules its interpreter
had imported: none may be. On the real test dockerd, the node's llama-server containers are
stopped as after a reboot, and the command starts them again one at a time; the incident it
prints is the one the flow would make, and it is in the history. A node that cannot be
recovered exits 1 with its reason, and is in the history too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.docker_ops.connect import open_engine
from homelab.docker_ops.containers import ContainerSettings, container_state, stop_container
from homelab.docker_ops.serial import RolloutSettings
from homelab.docker_ops.sources import model_sources
from homelab.history import open_history
from homelab.inventory import Inventory
from homelab.rollout.containers import EngineRollout, roll_out_containers
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.rollout import LLAMA_EXTRA_ARGS, TEST_GATE, EndpointPlan, RolloutLab, rollout_lab  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
RECOVER_TIMEOUT_S = 300
# Runs the `homelab` command in this interpreter and, at exit, prints the Prefect modules it imported.
_WATCHED = """
import atexit, sys
atexit.register(lambda: print("prefect modules:", sorted(m for m in sys.modules if m.split(".")[0] == "prefect"),
                              file=sys.stderr))
from homelab_app.cli import app
sys.argv = ["homelab", *sys.argv[1:]]
app()
"""


def _recover(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`homelab recover ARGS` as a user with no Prefect settings and a home of their own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "XDG_STATE_HOME"}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", _WATCHED, "recover", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RECOVER_TIMEOUT_S,
        check=False,
    )


def _assert_no_prefect(done: subprocess.CompletedProcess[str], home: Path) -> None:
    assert "prefect modules: []" in done.stderr, done.stderr[-3000:]
    assert not (home / ".prefect").exists()
    assert not list(home.rglob("prefect.db"))


def _history(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The incidents and their actions that the run stored in the history beside the cluster file."""
    with open_history("sqlite:///history.db", relative_to=path.parent) as history, history.engine.connect() as conn:
        incidents = conn.exec_driver_sql("select node, closed_at, summary from incidents").all()
        actions = conn.exec_driver_sql("select action, outcome from incident_actions order by id").all()
    return [tuple(r) for r in incidents], [tuple(a) for a in actions]


@pytest.mark.docker
@pytest.mark.llama
def test_cli_recovers_stopped_containers_in_start_order_without_prefect(rollout_lab: RolloutLab) -> None:
    lab = rollout_lab
    # Default container names ("homelab-" + endpoint), as the command knows no other; the tag keeps them ours.
    plans = [EndpointPlan(f"rc{lab.tag}b", "b.gguf", start_order=1), EndpointPlan(f"rc{lab.tag}a", "a.gguf")]
    for seed, plan in enumerate(plans):
        lab.write_model(plan.model_file, seed=seed)
    data = lab.cluster(plans)
    for endpoint in data["nodes"][0]["endpoints"]:
        endpoint["container"]["restart_policy"] = "no"  # the GPU default: the engine leaves them to homelab
    data["history"] = {"url": "sqlite:///history.db"}
    path = lab.root / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    inv = Inventory.model_validate(data)
    node = inv.nodes[0]
    names = [f"homelab-{p.name}" for p in sorted(plans, key=lambda p: p.start_order)]
    settings = RolloutSettings(
        helper=lab.settings().helper, containers=ContainerSettings(extra_args=LLAMA_EXTRA_ARGS), gate=TEST_GATE
    )
    with closing(open_engine(node)) as engine:
        sources = model_sources([p.model_file for p in plans], models_dir=lab.models_dir)
        assert roll_out_containers(EngineRollout.on(engine, inv, node, settings), node, sources).ok
        for name in names:
            stop_container(engine, name, 10)

    done = _recover(lab.root, "gpu2", "-i", str(path))

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "# Node gpu2: RECOVERED" in done.stdout
    assert "- why: the node serves again after: restart containers" in done.stdout
    assert "attempt 1: the Docker engine answers; its containers do not serve: restart containers" in done.stderr
    _assert_no_prefect(done, lab.root / "home")
    with closing(open_engine(node)) as engine:
        states = [container_state(engine, name) for name in names]
    assert all(s is not None and s.running for s in states), states
    first, second = states
    assert first is not None and second is not None and first.started_at and second.started_at
    assert first.started_at < second.started_at  # start_order, not file order
    incidents, actions = _history(path)
    assert [(n, closed is not None, summary) for n, closed, summary in incidents] == [
        ("gpu2", True, "RECOVERED: the node serves again after: restart containers")
    ]
    assert actions == [
        ("probe", "ok"),
        ("check docker", "ok"),
        ("restart containers", "ok"),
        ("probe", "ok"),
        ("outcome", "RECOVERED"),
    ]


def test_cli_reports_a_node_it_cannot_recover_without_prefect(tmp_path: Path) -> None:
    node = {
        "name": "handsneeded",
        "tier": "gpu",
        "host": LOOPBACK,
        "ssh": {"user": "root", "port": free_port(), "known_hosts": str(tmp_path / "known_hosts")},
        "docker": {"url": f"unix://{tmp_path}/none.sock"},
        "endpoints": [{"name": "llm", "kind": "llamacpp", "url": f"http://{LOOPBACK}:{free_port()}"}],
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"nodes": [node], "history": {"url": "sqlite:///history.db"}}))

    done = _recover(tmp_path, "handsneeded", "-i", str(path), "--restart-command", "/bin/false")

    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "# Node handsneeded: FAILED" in done.stdout
    assert "no wake settings; it needs hands" in done.stdout
    _assert_no_prefect(done, tmp_path / "home")
    incidents, actions = _history(path)
    assert [(n, closed) for n, closed, _ in incidents] == [("handsneeded", None)]
    assert actions == [("probe", "ok"), ("check docker", "failed"), ("check ssh", "failed"), ("outcome", "FAILED")]

    unknown = _recover(tmp_path, "nosuchnode", "-i", str(path))
    assert unknown.returncode == 2
    assert "no node named 'nosuchnode' (nodes: handsneeded)" in unknown.stderr
