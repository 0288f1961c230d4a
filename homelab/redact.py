"""Credentials out of URLs: the one function every URL goes through before it is shown or stored.

The cluster file refuses `http://user:password@host` (credentials belong under `secrets:`), but
URLs reach the code by other paths too (`gateway import`, a redirect's Location, an older
file), and a sweep's `--json`, the history rows, the route decision and the Prefect artifacts
must not carry a password whichever way it came.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact_url"]

REDACTED = "***"

# scheme:// (or a scheme-relative //), then the authority up to the first "/", "?" or "#"
# (RFC 3986 section 3.2). Greedy, so the user-info runs to the authority's last "@": a
# password with a raw "@" in it ("http://a:p@ss@host") is hidden whole, not in part.
_USERINFO = re.compile(r"^(?P<head>\s*(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)(?P<userinfo>[^/?#]*)@")


def redact_url(url: str) -> str:
    """`url` with its user-info replaced by `***` (`http://***@host/path`); any other text unchanged.

    Never raises, whatever the text: it is used on URLs that failed to parse too.
    """
    return _USERINFO.sub(rf"\g<head>{REDACTED}@", url, count=1)
