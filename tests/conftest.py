"""Test configuration: each real service has its own fixture module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.openbao",
    "tests.fixtures.prefect_server",
    "tests.fixtures.docker_engine",
    "tests.fixtures.llama",
    "tests.fixtures.fault_servers",
    "tests.fixtures.ollama",
    "tests.fixtures.litellm_proxy",
]
