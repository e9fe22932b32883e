"""sshd-lockout: an sshd_config change that shuts out the user or port the inventory connects with.

Checks Port, ListenAddress, PermitRootLogin, PasswordAuthentication, AllowUsers and DenyUsers in what the task
writes (line, block, content or the template file) against each host's connection facts. Blocks.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator

from safeapply.lint.model import Connection, Finding, Severity
from safeapply.lint.project import Task
from safeapply.lint.rules.base import Context, args_of, template_text

ID = "sshd-lockout"
SEVERITY = Severity.BLOCKING
DOC = "sshd Port/ListenAddress/PermitRootLogin/PasswordAuthentication/AllowUsers change locks out the inventory."

_DIRECTIVE = re.compile(r"^\s*(Port|ListenAddress|PermitRootLogin|PasswordAuthentication|AllowUsers|DenyUsers)"
                        r"\s+(.+?)\s*$", re.I | re.M)
_LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in _DIRECTIVE.finditer(text):
        if "{{" not in m.group(2):
            out.setdefault(m.group(1).lower(), []).append(m.group(2).split("#")[0].strip())
    return out


def _user_in(user: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(user, p.split("@")[0]) for line in patterns for p in line.split())


def problems(d: dict[str, list[str]], conn: Connection) -> Iterator[tuple[str, str]]:
    ports = {p for p in d.get("port", []) if p.isdigit()}
    ports |= {a.rsplit(":", 1)[1] for a in d.get("listenaddress", []) if re.search(r":\d+$", a)}
    if ports and str(conn.port) not in ports:
        yield (f"sshd would listen on port(s) {', '.join(sorted(ports))} only, but the inventory connects "
               f"to port {conn.port}", f"keep `Port {conn.port}` as well, or change ansible_port in the "
               "inventory in the same change")
    addrs = d.get("listenaddress", [])
    if addrs and all(a.startswith(_LOOPBACK) for a in addrs):
        yield "sshd would listen on loopback only", "add `ListenAddress 0.0.0.0` (or the host's address)"
    root_login = [v.lower() for v in d.get("permitrootlogin", [])]
    if conn.user == "root" and root_login and root_login[0] == "no":
        yield ("PermitRootLogin no, but the inventory logs in as root",
               "connect as a sudo user first (ansible_user), then disable root login")
    password = [v.lower() for v in d.get("passwordauthentication", [])]
    if conn.password_auth and password and password[0] == "no":
        yield ("PasswordAuthentication no, but the inventory logs in with a password",
               "install an SSH key for the user and switch the inventory to it first")
    allow = d.get("allowusers", [])
    if allow and conn.user and not _user_in(conn.user, allow):
        yield (f"AllowUsers {' '.join(allow)} does not include {conn.user}, the inventory's user",
               f"add {conn.user} to AllowUsers")
    if conn.user and _user_in(conn.user, d.get("denyusers", [])):
        yield f"DenyUsers includes {conn.user}, the inventory's user", f"remove {conn.user} from DenyUsers"


def _sshd_tasks(ctx: Context) -> Iterator[tuple[Task, dict[str, list[str]]]]:
    for task, _info in ctx.tasks("copy", "template", "lineinfile", "blockinfile", "replace"):
        args = args_of(task)
        if str(args.get("dest") or args.get("path") or "").startswith("/etc/ssh/sshd_config"):
            found = directives(template_text(task, ctx.project.root) + "\n" + str(args.get("replace", "")))
            if found:
                yield task, found


def check(ctx: Context) -> Iterator[Finding]:
    conns = ctx.connections or {"": Connection()}
    for task, found in _sshd_tasks(ctx):
        seen: set[str] = set()
        for host, conn in sorted(conns.items()):
            for message, fix in problems(found, conn):
                if message not in seen:
                    seen.add(message)
                    who = f" (host {host})" if host else ""
                    yield Finding(ID, SEVERITY, task.file, task.line, message + who, fix)
