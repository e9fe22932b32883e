"""firewall-lockout: a firewall enabled or tightened in a play that never keeps SSH open.

ufw, firewalld, iptables (module, `command`/`shell` running iptables/ip6tables/nft/ufw/firewall-cmd, or an
iptables-restore file) and nftables (rulesets or `nft` commands). If a play turns a firewall on, sets a default
deny/drop policy, appends a drop-everything rule, or removes SSH, some task in the same play must allow the
port the inventory connects to. Blocks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from safeapply.lint.model import Connection, Finding, Severity
from safeapply.lint.project import Task
from safeapply.lint.rules.base import Context, args_of, command_text, template_text

ID = "firewall-lockout"
SEVERITY = Severity.BLOCKING
DOC = "A firewall is enabled or set to deny without a rule that keeps the SSH port open."

_CMD_CLOSE = re.compile(
    r"ufw\s+(--force\s+)?(enable|default\s+(deny|reject))"
    r"|ip6?tables(-legacy|-nft)?\s.*(-P|--policy)\s+INPUT\s+(DROP|REJECT)"
    r"|ip6?tables(-legacy|-nft)?\s+(-w\s+(\d+\s+)?)?(-A|-I|--append|--insert)\s+INPUT\s+(\d+\s+)?-j\s+(DROP|REJECT)"
    r"|nft\s+(add|insert)\s+rule\s+(\S+\s+)?\S+\s+input\s+(counter\s+)?(drop|reject)"
    r"|policy\s+drop|firewall-cmd\s.*(--remove-service[= ]ssh|--set-default-zone[= ](drop|block))"
    r"|firewall-cmd\s.*--set-target[= ](DROP|REJECT)", re.I)
_NFT_DROP = re.compile(r"type\s+filter\s+hook\s+input[^}]*policy\s+drop|^:INPUT\s+(DROP|REJECT)", re.I | re.S | re.M)


def _allows(text: str, port: int) -> bool:
    t = text.lower()
    return bool(re.search(rf"(dport|port|allow|--dport)\D{{0,12}}\b({port}|ssh|openssh)\b[^\n]*", t)) and \
        "deny" not in t.split(str(port))[0][-20:]


def closes(task: Task, info_short: str, root: Any) -> bool:
    a = args_of(task)
    state, policy = str(a.get("state", "")).lower(), str(a.get("policy", a.get("default", ""))).lower()
    if info_short == "ufw":
        return state in ("enabled", "reloaded") or policy in ("deny", "reject")
    if info_short == "iptables":
        return (policy in ("drop", "reject") and str(a.get("chain", "")).upper() == "INPUT") or (
            str(a.get("jump", "")).upper() in ("DROP", "REJECT") and not a.get("destination_port")
            and not a.get("source") and str(a.get("chain", "")).upper() == "INPUT")
    if info_short == "firewalld":
        return (str(a.get("service", "")) == "ssh" and state == "disabled") or \
            str(a.get("target", "")).upper() in ("DROP", "REJECT", "%%REJECT%%")
    if info_short in ("shell", "command", "raw"):
        return bool(_CMD_CLOSE.search(command_text(task)))
    if info_short in ("copy", "template"):
        return bool(_NFT_DROP.search(template_text(task, root)))
    return False


def opens(task: Task, info_short: str, port: int, root: Any) -> bool:
    a = args_of(task)
    if info_short == "ufw":
        return str(a.get("rule", "")).lower() in ("allow", "limit") and (
            str(a.get("port", "")) in (str(port), "ssh") or str(a.get("name", "")).lower() == "openssh")
    if info_short == "iptables":
        return str(a.get("jump", "")).upper() == "ACCEPT" and str(port) in str(
            a.get("destination_port", a.get("destination_ports", "")))
    if info_short == "firewalld":
        return str(a.get("state", "")) == "enabled" and (a.get("service") == "ssh" or
                                                         str(a.get("port", "")).startswith(f"{port}/"))
    if info_short in ("shell", "command", "raw"):
        return (_allows(command_text(task), port) and "accept" in command_text(task).lower()) or bool(
            re.search(rf"(ufw\s+(allow|limit)\s+({port}|ssh|openssh))|--add-service[= ]ssh|--add-port[= ]{port}",
                      command_text(task), re.I))
    if info_short in ("copy", "template"):
        text = template_text(task, root).lower()
        nft = re.search(rf"dport\s+({{[^}}]*)?\b({port}|ssh)\b[^\n]*accept", text)
        return bool(nft) or (_allows(text, port) and "-j accept" in text)
    return False


def check(ctx: Context) -> Iterator[Finding]:
    conns = ctx.connections or {"": Connection()}
    ports = sorted({c.port for c in conns.values()})
    by_play: dict[str, list[tuple[Task, str]]] = {}
    for task, info in ctx.tasks():
        by_play.setdefault(f"{task.play_hosts}", []).append((task, info.short))
    root = ctx.project.root
    for tasks in by_play.values():
        closing = [t for t, short in tasks if closes(t, short, root)]
        for port in ports:
            if closing and not any(opens(t, short, port, root) for t, short in tasks):
                first = closing[0]
                yield Finding(ID, SEVERITY, first.file, first.line,
                              f"this firewall change blocks new SSH connections: nothing in the play allows "
                              f"port {port}", f"add a rule allowing tcp/{port} (e.g. `community.general.ufw: "
                              f"rule=allow port={port} proto=tcp`) before enabling the firewall")
