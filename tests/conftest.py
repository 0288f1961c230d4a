"""Test configuration: each real service has its own fixture module under tests/fixtures/."""

import os

from homelab_app.stack.prefect_cli import OFFLINE_ENV  # imports no Prefect

# Prefect's server and client send anonymous analytics unless told not to; nothing may leave
# loopback. The settings homelab gives its own Prefect processes, set before any Prefect import
# so subprocesses inherit them too.
os.environ.update(OFFLINE_ENV)

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.openbao",
    "tests.fixtures.prefect_server",
    "tests.fixtures.docker_engine",
    "tests.fixtures.llama",
    "tests.fixtures.fault_servers",
    "tests.fixtures.ollama",
    "tests.fixtures.litellm_proxy",
    "tests.fixtures.postgres",
    "tests.fixtures.hf_hub",
]
