"""latest-tag: a container image without a pinned tag (`:latest` or no tag at all).

`latest` moves: the next run may pull a different image, and a rollback cannot bring the old one back.
"""

from __future__ import annotations

from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, has_jinja

ID = "latest-tag"
SEVERITY = Severity.WARNING
DOC = "A container image is referenced by :latest or without a tag; pin a version (or a digest)."

IMAGE_MODULES = {"docker_container": "image", "docker_image": "name", "docker_image_pull": "name",
                 "podman_container": "image", "podman_image": "name", "docker_swarm_service": "image"}


def unpinned(image: str) -> bool:
    if "@sha256:" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.endswith(":latest")


def check(ctx: Context) -> Iterator[Finding]:
    for task, info in ctx.tasks(*IMAGE_MODULES):
        args = args_of(task)
        key = IMAGE_MODULES[info.short]
        image = args.get(key)
        if info.short.endswith("_image") and args.get("tag") not in (None, "latest"):
            continue
        if isinstance(image, str) and not has_jinja(image) and unpinned(image):
            line = getattr(task.args, "key_lines", {}).get(key, task.line)
            yield Finding(ID, SEVERITY, task.file, line, f"image `{image}` is not pinned to a version",
                          f"use a fixed tag such as `{image.split(':')[0]}:1.27` or a `@sha256:` digest")
