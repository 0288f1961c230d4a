"""Single values of the cluster file checked the way the code that uses them will read them.

A value that validates must not crash or hang later: a host is checked with the IDNA rules
httpx and anyio apply when they connect, a database URL with the dialect and driver SQLAlchemy
will load, a wake command with the `shlex` split `homelab.wake` runs. Credentials never sit in
the file: a URL with a password, or a password on a wake command line, is refused with a pointer
to `secrets:`, and the messages never repeat the value that carried the password.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from urllib.parse import urlsplit

import httpx
import sqlalchemy.engine
import sqlalchemy.exc

__all__ = [
    "FILE_NAME_RULE",
    "check_file_name",
    "check_host",
    "check_http_url",
    "check_docker_url",
    "check_database_url",
    "check_command",
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
    try:
        httpx.URL(value).host  # noqa: B018 - decoding an xn-- label is where a bad IDNA host fails
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"is not a URL httpx can request ({exc}): {value!r}") from None
    return value.rstrip("/")


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


def check_database_url(value: str) -> str:
    """A SQLAlchemy URL for a supported database whose driver is installed here."""
    _short_enough(value)
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
    """A local command line, split as `homelab.wake` will split it, with no password in it.

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
