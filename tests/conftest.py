"""Test configuration: each real service has its own fixture module under tests/fixtures/."""

import os

# Prefect's server and client send anonymous analytics unless told not to; nothing may leave
# loopback. Set before any Prefect import so subprocesses inherit it too.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT"] = "false"
os.environ["PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY"] = "false"

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
]
