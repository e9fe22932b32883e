"""Imports every command module so that each registers itself on `app`. One line per module."""

from __future__ import annotations

from safeapply.cli import misc  # noqa: F401
from safeapply.cli import sandbox  # noqa: F401
from safeapply.cli import ping  # noqa: F401
from safeapply.cli import scan  # noqa: F401
from safeapply.cli import lint  # noqa: F401
from safeapply.cli import snapshot  # noqa: F401
from safeapply.cli import run  # noqa: F401
from safeapply.cli import deadman  # noqa: F401
