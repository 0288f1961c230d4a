"""No telemetry, ever (#16 item 6): every homelab command that can start Prefect, run where
nothing can leave the machine and every DNS lookup is recorded.

Each command runs in a network namespace of its own with only a loopback interface, whose
resolver records each name asked (tests/fixtures/dns_recorder.py), as a person would run it:
a terminal on stderr (Prefect's SDK sends usage events only to terminals), HOME in a fresh
folder, no PREFECT_* settings, no DO_NOT_TRACK and no CI variables (Prefect's SDK turns its
analytics off in CI by itself, which would hide what homelab does). The cluster files name
their hosts by address, so the only name a command may look up is `localhost`.

Before homelab set the environment of the recovery flow, `homelab recover` looked up
api2.amplitude.com (Prefect's SDK usage events) four times and made ~/.prefect/prefect.db.
Since #18 it runs the recovery loop without Prefect at all (Prefect is imported only to read
a secret from its blocks), so it must leave no Prefect database anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from homelab_app.stack.prefect_api import configured_api_url
from homelab_app.stack.prefect_cli import prefect_env
from tests.fixtures.dns_recorder import OfflineNetns, offline_netns
from tests.fixtures.net import free_port
from tests.stack_util import HOMELAB, UP_TIMEOUT_S, cluster_file

# Variables by which Prefect 3.9 detects CI and then keeps its SDK analytics quiet by itself
# (prefect/_internal/analytics/ci_detection.py:9); the test's user has none of them.
_CI_VARIABLES = (
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "JENKINS_URL",
    "TRAVIS",
    "CIRCLECI",
    "BUILDKITE",
    "TF_BUILD",
    "CODEBUILD_BUILD_ID",
    "BITBUCKET_COMMIT",
    "TEAMCITY_VERSION",
    "DRONE",
    "SEMAPHORE",
    "APPVEYOR",
    "BUDDY",
    "CI_NAME",
)
_MAY_LOOK_UP = {"localhost"}
_RECOVER_TIMEOUT_S = 300


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[OfflineNetns]:
    with offline_netns(tmp_path) as space:
        yield space


def _user_env(home: Path) -> dict[str, str]:
    """A user with no Prefect settings, no opt-out and a home of their own."""
    drop = {"DO_NOT_TRACK", "XDG_STATE_HOME", *_CI_VARIABLES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in drop}
    env["HOME"] = str(home)
    return env


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def _outside_names(netns: OfflineNetns) -> list[str]:
    return [name for name in netns.names() if name not in _MAY_LOOK_UP]


def test_recover_looks_up_nothing_and_leaves_no_prefect_state(tmp_path: Path, netns: OfflineNetns) -> None:
    """`homelab recover` runs the recovery loop without Prefect: no lookups, no Prefect state at all."""
    home = _home(tmp_path)
    cluster = cluster_file(tmp_path, ["alpha"])
    done = netns.run(
        [str(HOMELAB), "recover", "alpha", "-i", str(cluster)],
        _user_env(home),
        tmp_path,
        _RECOVER_TIMEOUT_S,
        terminal=True,
    )
    # The node serves nothing and the file gives no way to recover it: the loop ran, and failed.
    assert done.returncode == 1, done.stderr[-4000:]
    assert "Node alpha: FAILED" in done.stdout
    assert _outside_names(netns) == []
    assert not (home / ".prefect").exists()
    assert not list(home.rglob("prefect.db"))


def test_up_and_down_look_up_nothing_and_keep_prefect_in_the_state_dir(tmp_path: Path, netns: OfflineNetns) -> None:
    """`homelab up` (server, blocks, pool, deploy, worker) then `homelab down`."""
    home = _home(tmp_path)
    cluster_file(tmp_path, ["alpha"])
    env = _user_env(home)
    state = tmp_path / "state"
    try:
        up = netns.run(
            [str(HOMELAB), "up", "--port", str(free_port()), "--state-dir", str(state)],
            env,
            tmp_path,
            UP_TIMEOUT_S,
            terminal=True,
        )
        assert up.returncode == 0, up.stderr[-4000:]
    finally:
        down = netns.run([str(HOMELAB), "down", "--state-dir", str(state)], env, tmp_path, 120, terminal=True)
    assert down.returncode == 0, down.stderr[-4000:]
    assert _outside_names(netns) == []
    assert not (home / ".prefect").exists()
    assert (state / "prefect" / "prefect.db").is_file()


def test_a_prefect_home_the_user_set_is_kept(tmp_path: Path) -> None:
    env = prefect_env({"PREFECT_HOME": str(tmp_path / "theirs")}, tmp_path / "ours")
    assert env["PREFECT_HOME"] == str(tmp_path / "theirs")
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"


def test_the_api_in_the_users_profile_is_still_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Homelab's Prefect home replaces ~/.prefect, but `prefect config set PREFECT_API_URL=...`
    (docs/scale-out.md) wrote the profile there, and `up` must still use that server."""
    home = _home(tmp_path)
    (home / ".prefect").mkdir()
    api_url = "http://127.0.0.1:9/api"
    (home / ".prefect" / "profiles.toml").write_text(
        f'active = "lan"\n\n[profiles.lan]\nPREFECT_API_URL = "{api_url}"\n'
    )
    monkeypatch.setenv("HOME", str(home))
    for name in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_PROFILES_PATH", "PREFECT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    env = prefect_env(os.environ, tmp_path / "state" / "prefect")
    assert env["PREFECT_HOME"] == str(tmp_path / "state" / "prefect")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert configured_api_url(tmp_path) == api_url
