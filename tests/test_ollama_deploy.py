"""The Ollama rollout's core against Ollama stand-ins (not Ollama): faults, the pull path, CPU nodes, the plan's rules.

These call `homelab.ollama` directly (as `homelab rollout` does), so no Prefect retry
hides a fault: an upload cut on the wire fails the step, and the next run must redo it cleanly.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from homelab.docker_ops.apply import StepStatus
from homelab.docker_ops.sources import CopyProgress
from homelab.inventory import Inventory
from homelab.ollama import OllamaAPI, OllamaRolloutReport, desired_ollama, ollama_sources
from homelab.ollama.apply import ApiRunner, apply
from homelab.rollout.ollama import ApiRollout, ollama_apis, plan_ollama_node, roll_out_ollama
from homelab.vram.node_plan import plan_node_vram
from homelab_app.ollama_standin import ModelSpec, StandInOptions
from tests.fixtures.fault_servers import FaultServer, Handler
from tests.fixtures.net import LOOPBACK, wait_until
from tests.fixtures.ollama import StandInServer
from tests.fixtures.ollama_lab import TEST_SETTINGS, OllamaLab, deployed, ollama_lab  # noqa: F401 (fixture)

ALPHA = deployed("alpha", "a", "alpha.gguf")
BETA = deployed("beta", "b", "beta.gguf")


def roll_out(lab: OllamaLab, cluster: Path, *, prune: bool = False) -> OllamaRolloutReport:
    inv = lab.inventory(cluster)
    node = inv.nodes[0]
    vram = plan_node_vram(inv, node, models_dir=lab.models_dir)
    with ollama_apis(node, TEST_SETTINGS) as apis:
        runner = ApiRollout(apis, TEST_SETTINGS)
        return roll_out_ollama(runner, node, ollama_sources(node, lab.models_dir), vram=vram, prune=prune)


def cutting_proxy(upstream: int, cut_after: int, cutting: threading.Event) -> Handler:
    """Forward HTTP both ways; while `cutting` is set, hang up on a blob upload after `cut_after` body bytes."""

    def handle(conn: socket.socket, server: FaultServer) -> None:
        up = socket.create_connection((LOOPBACK, upstream))

        def back() -> None:
            try:
                while data := up.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

        threading.Thread(target=back, daemon=True).start()
        passed: int | None = None  # body bytes of a blob upload forwarded so far
        try:
            while data := conn.recv(65536):
                if cutting.is_set() and b"POST /api/blobs/" in data:
                    end = data.index(b"\r\n\r\n") + 4  # the request head: forwarded whole
                    up.sendall(data[:end])
                    data, passed = data[end:], 0
                if passed is not None:
                    if passed + len(data) > cut_after:
                        up.sendall(data[: cut_after - passed])
                        # Both hung up: the node sees half a body, the client a dead connection. (A shutdown,
                        # because a close alone waits for the other thread's recv() and sends nothing.)
                        for sock in (up, conn):
                            sock.shutdown(socket.SHUT_RDWR)
                        return
                    passed += len(data)
                up.sendall(data)
        finally:
            up.close()

    return handle


def test_an_upload_cut_halfway_creates_nothing_and_the_next_run_redoes_it(
    ollama_lab: OllamaLab,
    fault_server: Callable[[Handler], FaultServer],
) -> None:
    lab = ollama_lab
    model = lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("box")
    cutting = threading.Event()
    cutting.set()
    proxy = fault_server(cutting_proxy(httpx.URL(server.url).port or 0, model.stat().st_size // 2, cutting))
    lab.standins["box"] = StandInServer(url=proxy.url, standin=server.standin, stop=server.stop)  # behind the proxy
    cluster = lab.write_cluster({"box": [ALPHA]})

    cut = roll_out(lab, cluster)

    assert not cut.ok and cut.failure is not None
    assert cut.failure.startswith(
        "upload alpha.gguf (0.5 MiB) to ollama: not on the node: box/ollama: upload alpha.gguf:"
    )
    assert [o.status for o in cut.outcomes] == [StepStatus.FAILED, StepStatus.NOT_RUN, StepStatus.NOT_RUN]
    assert server.standin.created == [] and "alpha:latest" not in server.standin.models
    wait_until(lambda: bool(server.standin.uploads), 10, "the stand-in noticing the cut")
    assert [u.status for u in server.standin.uploads] == [0], "the node saw the client go away mid-body"
    digest = f"sha256:{hashlib.sha256(model.read_bytes()).hexdigest()}"
    assert not server.standin.blobs.has(digest) and server.standin.blobs.leftovers() == []

    cutting.clear()
    again = roll_out(lab, cluster)

    assert again.ok, again.failure
    assert [o.summary.split(" ")[0] for o in again.outcomes] == ["upload", "create", "preload"]
    assert server.standin.uploads[-1].status == 201 and server.standin.created == ["alpha:latest"]


def test_a_file_changed_after_planning_is_a_digest_mismatch_naming_it(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    model = lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("box")
    inv = lab.inventory(lab.write_cluster({"box": [ALPHA]}))
    node = inv.nodes[0]
    desired = desired_ollama(
        node, ollama_sources(node, lab.models_dir), plan_node_vram(inv, node, models_dir=lab.models_dir)
    )
    with ollama_apis(node, TEST_SETTINGS) as apis:
        plan = plan_ollama_node(apis, desired)
        lab.write_model("alpha.gguf", seed=99)  # replaced between planning and uploading

        report = apply(plan, ApiRunner(apis, TEST_SETTINGS))

    assert report.failure is not None
    assert "box/ollama: upload alpha.gguf: HTTP 400: digest mismatch, expected" in report.failure
    assert [o.status for o in report.outcomes][1:] == [StepStatus.NOT_RUN] * 2
    assert server.standin.created == [] and server.standin.blobs.leftovers() == []
    assert roll_out(lab, lab.write_cluster({"box": [ALPHA]})).ok, "a fresh plan hashes the new file"
    assert server.standin.blobs.has(f"sha256:{hashlib.sha256(model.read_bytes()).hexdigest()}")


def test_an_upload_is_streamed_in_chunks_with_progress(ollama_lab: OllamaLab, tmp_path: Path) -> None:
    server = ollama_lab.standin("box")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (9 * 4096))  # 9 MiB: three reads of 4 MiB at most
    digest = f"sha256:{hashlib.sha256(big.read_bytes()).hexdigest()}"
    seen: list[CopyProgress] = []

    with httpx.Client(base_url=server.url) as client:
        sent = OllamaAPI(client, "box/ollama").upload_blob(big, digest, seen.append)

    assert sent == 9 << 20
    assert [(p.phase, p.done_bytes, p.total_bytes) for p in seen] == [
        ("upload", 4 << 20, 9 << 20), ("upload", 8 << 20, 9 << 20), ("upload", 9 << 20, 9 << 20),
    ]  # fmt: skip
    assert server.standin.blobs.has(digest)


def test_a_pulled_model_is_made_with_the_planned_parameters(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    registry = (ModelSpec(name="qwen2.5:0.5b", size=400_000_000, family="qwen2", parameter_size="494.03M"),)
    server = lab.standin("box", StandInOptions(registry=registry))
    pulled = {"name": "fast", "alias": "fast", "deploy": {"pull": "qwen2.5:0.5b", "num_ctx": 2048}}
    cluster = lab.write_cluster({"box": [pulled]})

    report = roll_out(lab, cluster)

    assert report.ok, report.failure
    assert [s.summary() for s in report.plan.steps][:2] == [
        "pull qwen2.5:0.5b on ollama: not on the node",
        "create fast:latest on ollama from qwen2.5:0.5b, num_ctx 2048, num_gpu 25: missing",
    ]
    assert server.standin.models["fast:latest"].parameters == {"num_ctx": 2048, "num_gpu": 25}
    assert roll_out(lab, cluster, prune=True).plan.empty, "the pulled tag it is made from stays"


def test_a_node_without_gpus_runs_its_models_on_the_cpu(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    server = lab.standin("nas")
    cluster = lab.write_cluster({"nas": [ALPHA]})
    cluster.write_text(cluster.read_text().replace("  gpus:\n  - name: Lab GPU\n    vram_gib: 8\n", ""))
    assert not lab.inventory(cluster).nodes[0].gpus

    report = roll_out(lab, cluster)

    assert report.ok, report.failure
    assert server.standin.models["alpha:latest"].parameters == {"num_ctx": 512, "num_gpu": 0}
    [check] = report.checks
    assert (check.size_vram, check.planned_gpu_bytes, check.matches) == (0, 0, True)


def test_models_the_inventory_names_are_never_unloaded_or_deleted(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.write_model("alpha.gguf", seed=1)
    hand_pulled = ModelSpec(name="llava:13b", size=1000)
    stray = ModelSpec(name="stray:7b", size=1000)
    server = lab.start_standin([hand_pulled, stray])
    lab.standins["box"] = server
    for model in ("llava:13b", "stray:7b"):
        httpx.post(f"{server.url}/api/generate", json={"model": model, "keep_alive": -1})
    served = {"name": "llava:13b", "alias": "vision"}  # served, not deployed: homelab leaves it be

    report = roll_out(lab, lab.write_cluster({"box": [ALPHA, served]}), prune=True)

    assert report.ok, report.failure
    removals = [s.summary() for s in report.plan.steps if s.kind in ("unload_model", "delete_model")]
    assert removals == [
        "unload stray:7b on ollama: loaded but not in the inventory",
        "delete stray:7b on ollama: not in the inventory",
    ]
    assert set(server.standin.models) == {"alpha:latest", "llava:13b"}
    assert set(server.standin.resident()) == {"alpha:latest", "llava:13b"}


def test_an_inventory_without_deploy_sections_plans_nothing_for_ollama(ollama_lab: OllamaLab) -> None:
    lab = ollama_lab
    lab.standin("box")
    inv: Inventory = lab.inventory(lab.write_cluster({"box": [{"name": "llava:13b", "alias": "vision"}]}))

    assert desired_ollama(inv.nodes[0], {}).endpoints == []
