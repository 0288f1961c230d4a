"""Every Prefect task in `tasks/`: retries from the one idempotence flag, nothing cached, no secret as a parameter.

The tasks are found, not listed: each module under `tasks/` is imported and every `prefect.Task`
defined there is checked, so a new task is covered the moment it exists. Only the named list of
tasks that change the cluster or send something out must be kept by hand, and each name on it
must still exist, so a rename cannot quietly drop one.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import types
import typing
from collections.abc import Iterator

import paramiko
import pytest
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, SecretBytes, SecretStr

import tasks
from homelab.docker_ops.connect import SSHAccess
from homelab.remote import SSHCredentials
from tasks.options import task_options

# Tasks that change what runs, append to the history, or send an event or artifact: repeating
# one behind the user's back would act twice, so none may retry.
STATE_CHANGING = (
    "start-container",
    "roll-back-container",
    "restart-node-docker",
    "restart-node-containers",
    "wake-node",
    "emit-sweep-events",
    "emit-recovery-event",
    "record-sweep-history",
    "record-vram-round",
    "record-incident",
    "publish-sweep-artifact",
    "publish-vram-artifact",
    "publish-health-report",
    "publish-rollout-artifact",
    "publish-rollout-preview",
    "publish-ollama-rollout-artifact",
)
# Tasks whose Failed state is a finding (a node that is down), not an error: Prefect retries a
# returned Failed state too, so a retry would only judge the same results again, later.
FINDINGS = ("report-node-health",)
# A task named for one of these acts, whatever list it is on.
ACTING_VERBS = ("start-", "roll-back-", "restart-", "wake-", "emit-", "record-", "publish-")
# Values that must never be a task parameter: Prefect stores what a task is given.
SECRET_TYPES: tuple[type, ...] = (SecretStr, SecretBytes, paramiko.PKey)


def _all_tasks() -> list[Task[..., typing.Any]]:
    found = []
    for info in pkgutil.iter_modules(tasks.__path__):
        module = importlib.import_module(f"{tasks.__name__}.{info.name}")
        found += [
            obj for obj in list(vars(module).values()) if isinstance(obj, Task) and obj.fn.__module__ == module.__name__
        ]
    return sorted(found, key=lambda t: t.name)


TASKS = _all_tasks()
BY_NAME = {t.name: t for t in TASKS}


def _reference(idempotent: bool) -> Task[..., None]:
    """A task made with nothing but `task_options`: what every real task must match."""
    return task(lambda: None, **task_options(idempotent=idempotent))


def _retry_shape(t: Task[..., typing.Any]) -> tuple[object, ...]:
    return (t.retries, t.retry_delay_seconds, t.retry_jitter_factor, t.retry_condition_fn)


def test_tasks_are_found_in_every_module() -> None:
    modules = {t.fn.__module__ for t in TASKS}
    assert {"tasks.health", "tasks.vram", "tasks.reports", "tasks.rollout", "tasks.recovery", "tasks.ollama"} <= modules
    assert len(BY_NAME) == len(TASKS), "task names are unique"


@pytest.mark.parametrize("t", TASKS, ids=[t.name for t in TASKS])
def test_retries_are_what_task_options_gives_for_one_flag(t: Task[..., typing.Any]) -> None:
    shapes = {flag: _retry_shape(_reference(flag)) for flag in (True, False)}
    assert shapes[True] != shapes[False]
    assert _retry_shape(t) in shapes.values(), f"{t.name}: retries not from task_options(idempotent=...)"


@pytest.mark.parametrize("t", TASKS, ids=[t.name for t in TASKS])
def test_results_are_never_cached_or_persisted(t: Task[..., typing.Any]) -> None:
    assert t.cache_policy is NO_CACHE
    assert t.persist_result is False
    assert t.cache_expiration is None and not t.refresh_cache


@pytest.mark.parametrize("name", STATE_CHANGING)
def test_a_task_that_changes_the_cluster_never_retries(name: str) -> None:
    assert name in BY_NAME, f"{name} is gone: update STATE_CHANGING"
    assert BY_NAME[name].retries == 0
    assert _retry_shape(BY_NAME[name]) == _retry_shape(_reference(False))


@pytest.mark.parametrize("name", FINDINGS)
def test_a_task_whose_failure_is_a_finding_never_retries(name: str) -> None:
    assert name in BY_NAME, f"{name} is gone: update FINDINGS"
    assert _retry_shape(BY_NAME[name]) == _retry_shape(_reference(False))


def test_every_acting_task_is_on_the_list() -> None:
    acting = {t.name for t in TASKS if t.name.startswith(ACTING_VERBS)}
    assert acting <= set(STATE_CHANGING)


def _types_within(tp: object, seen: set[int]) -> Iterator[type]:
    """`tp` and every type reachable from it: union and generic arguments, model and dataclass fields."""
    if id(tp) in seen:
        return
    seen.add(id(tp))
    for arg in typing.get_args(tp):
        yield from _types_within(arg, seen)
    if not isinstance(tp, type) or isinstance(tp, types.GenericAlias):
        return
    yield tp
    if issubclass(tp, BaseModel):
        for field in tp.model_fields.values():
            yield from _types_within(field.annotation, seen)
    elif dataclasses.is_dataclass(tp):
        for hint in typing.get_type_hints(tp).values():
            yield from _types_within(hint, seen)


@pytest.mark.parametrize("t", TASKS, ids=[t.name for t in TASKS])
def test_no_parameter_can_hold_a_secret(t: Task[..., typing.Any]) -> None:
    hints = typing.get_type_hints(t.fn)
    hints.pop("return", None)
    for name, hint in hints.items():
        secrets = [tp.__name__ for tp in _types_within(hint, set()) if issubclass(tp, SECRET_TYPES)]
        assert not secrets, f"{t.name}({name}): can hold {secrets}; read the secret inside the task (tasks/access.py)"


def test_the_secret_walk_finds_a_key_in_credentials() -> None:
    for holder in (SSHCredentials, SSHAccess, list[SSHCredentials | None]):
        assert any(issubclass(tp, SECRET_TYPES) for tp in _types_within(holder, set())), holder
