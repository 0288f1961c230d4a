"""Smoke tests of the runtime services the integration tests stand on: dockerd and llama-server.

If one of these fails, every rollout or probe test built on it would fail confusingly; here the
failure names the service.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import docker
import httpx
import pytest
from docker.models.containers import Container

from tests.fixtures.docker_engine import DockerEngine
from tests.fixtures.llama import LlamaServer
from tests.fixtures.net import LOOPBACK, free_port, wait_until

HEALTH_TIMEOUT_S = 60.0


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.docker
def test_busybox_container_echoes(docker_engine: DockerEngine, busybox_image: str) -> None:
    with closing(docker_engine.client()) as client:
        out = client.containers.run(busybox_image, ["sh", "-c", "echo hello"], remove=True)

    assert out == b"hello\n"


@pytest.mark.docker
def test_named_volume_carries_data_between_containers(docker_engine: DockerEngine, busybox_image: str) -> None:
    with closing(docker_engine.client()) as client:
        volume = client.volumes.create(_name("hl-smoke"))
        try:
            mount = {volume.name: {"bind": "/v", "mode": "rw"}}
            client.containers.run(busybox_image, ["sh", "-c", "echo kept > /v/f && sync"], volumes=mount, remove=True)
            out = client.containers.run(busybox_image, ["cat", "/v/f"], volumes=mount, remove=True)
        finally:
            volume.remove(force=True)

    assert out == b"kept\n"


@pytest.mark.llama
def test_llama_server_health_models_chat(tiny_gguf: Path, llama_server: Callable[..., LlamaServer]) -> None:
    server = llama_server(tiny_gguf, alias="tiny-smoke")

    health = httpx.get(f"{server.url}/health", timeout=5.0)
    models = httpx.get(f"{server.url}/v1/models", timeout=5.0).json()
    chat = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "tiny-smoke", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8},
        timeout=60.0,
    )

    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert "tiny-smoke" in [m["id"] for m in models["data"]]
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["role"] == "assistant"


def _copy_into_volume(client: docker.DockerClient, image: str, volume: str, src: Path) -> None:
    """Through a created, never started container: the way models reach a node, no bind mount."""
    helper = client.containers.create(image, ["true"], volumes={volume: {"bind": "/models", "mode": "rw"}})
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(src, arcname=src.name)
        assert helper.put_archive("/models", buf.getvalue())
    finally:
        helper.remove(force=True)


def _serving(container: Container, url: str) -> bool:
    """/health 200; a container that died fails at once, with its log."""
    container.reload()
    if container.status == "exited":
        raise RuntimeError(f"container exited:\n{container.logs().decode(errors='replace')[-2000:]}")
    return httpx.get(f"{url}/health", timeout=1.0).status_code == 200


@pytest.mark.docker
@pytest.mark.llama
def test_llama_server_image_serves_a_model_from_a_named_volume(
    docker_engine: DockerEngine, busybox_image: str, llama_server_image: str, tiny_gguf: Path
) -> None:
    port = free_port()
    with closing(docker_engine.client()) as client:
        volume = client.volumes.create(_name("hl-models"))
        container: Container | None = None
        try:
            _copy_into_volume(client, busybox_image, volume.name, tiny_gguf)
            container = running = client.containers.run(
                llama_server_image,
                ["-m", f"/models/{tiny_gguf.name}", "--alias", "tiny-docker", "-c", "512", "-t", "1"],
                volumes={volume.name: {"bind": "/models", "mode": "ro"}},
                ports={"8080/tcp": (LOOPBACK, port)},
                detach=True,
            )
            url = f"http://{LOOPBACK}:{port}"
            wait_until(lambda: _serving(running, url), HEALTH_TIMEOUT_S, "llama-server in docker")
            models = httpx.get(f"{url}/v1/models", timeout=5.0).json()
        finally:
            if container is not None:
                container.remove(force=True)
            volume.remove(force=True)

    assert "tiny-docker" in [m["id"] for m in models["data"]]
