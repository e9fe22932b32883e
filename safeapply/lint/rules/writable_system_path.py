"""writable-system-path: a mode that lets other users (world) or a group write a system file or tree.

/etc, /usr, /var/lib, /boot, binaries, unit directories, sudoers, PAM, cron and ssh directories: any user who
can write there can become root. World-writable always blocks; group-writable blocks too, except on a data
directory (/var/lib/<app>, /etc/<app>/...) whose owner and group are an application's own (not root, wheel,
sudo, adm, staff, users, docker). The finding
names the *resolved* path (`{{ app_dir }}` through play vars, role defaults and group_vars) and the mode in
octal, and says when `recurse: true` spreads it over a whole tree. Blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Finding, Severity
from safeapply.lint.rules.base import Context, args_of, has_jinja
from safeapply.lint.templates import literal_vars, render_literal

ID = "writable-system-path"
SEVERITY = Severity.BLOCKING
DOC = "World- or group-writable mode on /etc, /usr, /var/lib, unit dirs, sudoers, ssh... (resolved path, octal)."

SYSTEM = re.compile(r"^/(etc|usr|var/lib|boot|bin|sbin|lib|lib64|root)(/|$)")
ALWAYS = re.compile(r"^(/etc/(sudoers|ssh|systemd|pam\.d|cron|passwd|shadow|group|profile|security|ld\.so)"
                    r"|/(usr/)?(local/)?(s?bin)(/|$)|/(usr/)?lib/systemd|/root(/|$)|.*/\.ssh(/|$))")
_SHARED = {"", "root", "0", "wheel", "sudo", "adm", "staff", "users", "admin", "docker"}  # groups many people share
_SYMBOLIC = re.compile(r"(^|,)([ugoa]*)[+=][rwxXst]*w")


def bits(mode: Any) -> tuple[int, str] | None:
    """(write bits for group|other as 0o020|0o002, mode shown in octal or as written), None if unknown."""
    if isinstance(mode, bool) or mode is None or has_jinja(mode):
        return None
    if isinstance(mode, int):  # YAML read 0777 as the number 511: Ansible applies it as that number
        return mode & 0o022, f"0{mode:o}"
    text = str(mode).strip()
    if re.fullmatch(r"0?o?[0-7]{3,4}", text):
        value = int(text.replace("o", "").lstrip("0") or "0", 8)
        return value & 0o022, f"0{value:o}".rjust(4, "0")
    out = 0
    for m in _SYMBOLIC.finditer(text):
        who = m.group(2) or "a"
        out |= (0o002 if ("o" in who or "a" in who) else 0) | (0o020 if ("g" in who or "a" in who) else 0)
    return out, text


def check(ctx: Context) -> Iterator[Finding]:
    known: dict[str, str] | None = None
    for task, _info in ctx.tasks():
        args = args_of(task)
        if "mode" not in args or (found := bits(args["mode"])) is None or not found[0]:
            continue
        written = str(args.get("dest") or args.get("path") or args.get("name") or "")
        known = literal_vars(ctx.project) if known is None else known
        path = render_literal(written, known, task.data.get("vars")) if has_jinja(written) else written
        if not path or not SYSTEM.match(path):
            continue
        write, shown = found
        owner, group = (str(render_literal(str(args.get(k, "")), known or {}, task.data.get("vars")) or "")
                        for k in ("owner", "group"))
        own_data_dir = owner not in _SHARED and group not in _SHARED and not ALWAYS.match(path) and \
            path.count("/") >= 3  # /var/lib/<app>, /etc/<app>: an application's own directory
        if not write & 0o002 and own_data_dir:
            continue
        who = "every user" if write & 0o002 else f"group {group or '(the current group)'}"
        tree = " and everything under it (`recurse: true`)" if str(args.get("recurse", "")).lower() in (
            "true", "yes") else ""
        via = f" (`{written}`)" if written != path else ""
        line = getattr(task.args, "key_lines", {}).get("mode", task.line)
        yield Finding(ID, SEVERITY, task.file, line,
                      f"mode {shown} lets {who} write {path}{via}{tree}",
                      "use 0644 for files and 0755 for directories (0640/0750 for anything secret), quoted as a "
                      "string; give an application its own directory owned by its user", task_line=task.line)
