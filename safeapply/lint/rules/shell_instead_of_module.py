"""shell-instead-of-module: shell/command doing what a module does, without creates/removes/changed_when.

Such a task reports "changed" on every run and does not know when it is done. Warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, command_text

ID = "shell-instead-of-module"
SEVERITY = Severity.WARNING
DOC = "shell/command runs systemctl, apt-get, docker run... where a module is idempotent and reports changes."

MODULE_FOR = {
    "systemctl": "ansible.builtin.systemd_service", "service": "ansible.builtin.service",
    "apt-get": "ansible.builtin.apt", "apt": "ansible.builtin.apt", "yum": "ansible.builtin.dnf",
    "dnf": "ansible.builtin.dnf", "pip": "ansible.builtin.pip", "pip3": "ansible.builtin.pip",
    "docker": "community.docker.docker_container", "podman": "containers.podman.podman_container",
    "useradd": "ansible.builtin.user", "groupadd": "ansible.builtin.group", "git": "ansible.builtin.git",
    "ufw": "community.general.ufw", "firewall-cmd": "ansible.posix.firewalld", "crontab": "ansible.builtin.cron",
    "chmod": "ansible.builtin.file", "chown": "ansible.builtin.file", "mkdir": "ansible.builtin.file",
    "ln": "ansible.builtin.file", "wget": "ansible.builtin.get_url", "unzip": "ansible.builtin.unarchive",
    "hostnamectl": "ansible.builtin.hostname", "mount": "ansible.posix.mount", "sysctl": "ansible.posix.sysctl",
}
_GUARDS = ("creates", "removes")
_PREFIX = re.compile(r"^(\s*(sudo|env|exec|nohup)(\s+-\S+)*\s+)+")


def first_word(command: str) -> str:
    words = _PREFIX.sub("", command.strip()).split()
    return words[0].rsplit("/", 1)[-1] if words else ""


def check(ctx: Context) -> Iterator[Finding]:
    for task, _info in ctx.tasks("command", "shell"):
        args = args_of(task)
        if any(g in args for g in _GUARDS) or "changed_when" in task.data:
            continue
        word = first_word(command_text(task))
        module = MODULE_FOR.get(word)
        if module:
            yield Finding(ID, SEVERITY, task.file, task.line,
                          f"`{task.action}` runs `{word}` on every run and always reports changed",
                          f"use `{module}`, or add `creates:`/`removes:` or `changed_when:`")
