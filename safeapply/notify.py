"""`--notify URL`: one plain HTTP POST (ntfy-style: the body is the message, headers carry title/priority).

A notification that cannot be delivered never changes the run's outcome: `post` returns the error text
for the run record instead of raising.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

from safeapply.errors import UsageError


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--notify {url!r} is not an http(s) URL", "e.g. https://ntfy.sh/my-topic")
    return url


def post(url: str, title: str, message: str, *, priority: str = "high", tags: str = "warning",
         timeout: float = 10.0) -> str | None:
    """POST the message; None when delivered, else a one-line reason."""
    req = urllib.request.Request(
        check_url(url), data=message.encode(), method="POST",
        headers={"Title": _header(title), "Priority": priority, "Tags": tags,
                 "Content-Type": "text/plain; charset=utf-8", "User-Agent": "safeapply"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        return f"POST {url}: HTTP {e.code} {e.reason}"
    except (urllib.error.URLError, OSError) as e:
        return f"POST {url}: {getattr(e, 'reason', e)}"
    return None


def _header(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ").encode("latin-1", "replace").decode("latin-1")
