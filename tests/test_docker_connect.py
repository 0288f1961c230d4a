"""Reaching a node's Docker engine: unix socket, tcp, ssh through a real sshd; dead engines named clearly."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import paramiko
import pytest

from homelab.docker_ops.connect import SSHAccess, open_engine
from homelab.docker_ops.sources import model_sources
from homelab.errors import DockerOpError
from homelab.inventory import Node
from homelab.rollout.containers import EngineRollout, roll_out_containers
from tests.docker_ssh import docker_only_key
from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.rollout import EndpointPlan, RolloutLab, chat, rollout_lab  # noqa: F401 (fixture)
from tests.fixtures.sshd import SSHServer


def node_at(url: str) -> Node:
    return Node(name="gpu2", tier="secondary", host=LOOPBACK, docker={"url": url})


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("unix:///nonexistent/docker.sock", "No such file or directory"),
        (f"tcp://{LOOPBACK}:{free_port()}", "Connection refused"),
    ],
)
def test_an_engine_that_does_not_answer_is_named_with_its_url(url: str, words: str) -> None:
    with pytest.raises(DockerOpError) as raised:
        open_engine(node_at(url))
    message = str(raised.value)
    assert message.startswith(f"node gpu2 ({url}): the Docker engine does not answer: ")
    assert words in message


@pytest.mark.docker
def test_a_local_engine_answers(docker_engine: DockerEngine) -> None:
    with closing(open_engine(node_at(docker_engine.base_url))) as engine:
        assert engine.client.ping()
        assert engine.node == "gpu2"


def _docker_only_key(sshd: SSHServer, docker_engine: DockerEngine, root: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(docker_only_key(sshd, docker_engine, root)))


@pytest.mark.docker
@pytest.mark.llama
def test_a_rollout_over_ssh(sshd: SSHServer, rollout_lab: RolloutLab, tmp_path: Path) -> None:
    lab = rollout_lab
    access = SSHAccess(known_hosts=sshd.known_hosts, key=_docker_only_key(sshd, lab.docker_engine, tmp_path))
    lab.write_model("model.gguf", seed=4)
    endpoint = EndpointPlan("remote", "model.gguf")
    url = f"ssh://{sshd.user}@{sshd.host}:{sshd.port}"
    inv = lab.inventory([endpoint], docker_url=url)
    [node] = inv.nodes

    with closing(open_engine(node, ssh=access)) as engine:
        assert engine.url == url
        report = roll_out_containers(
            EngineRollout.on(engine, inv, node, lab.settings()),
            node,
            model_sources(["model.gguf"], models_dir=lab.models_dir),
        )

    assert report.ok, report.failure
    assert [o.summary for o in report.outcomes] == [
        f"create volume {lab.volume}: missing",
        f"copy model.gguf into volume {lab.volume}: not in the volume",
        f"create {lab.prefix}remote: missing",
    ]
    chat(endpoint.port)
    assert "Accepted publickey" in (sshd.root / "sshd.log").read_text(errors="replace")


@pytest.mark.docker
def test_an_unknown_host_key_is_refused(sshd: SSHServer, docker_engine: DockerEngine, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    key = _docker_only_key(sshd, docker_engine, tmp_path)
    url = f"ssh://{sshd.user}@{sshd.host}:{sshd.port}"
    with pytest.raises(DockerOpError) as raised:
        open_engine(node_at(url), ssh=SSHAccess(known_hosts=empty, key=key))
    assert str(raised.value).startswith(f"node gpu2 ({url}): the Docker engine does not answer: ")
    assert "not found in known_hosts" in str(raised.value)
