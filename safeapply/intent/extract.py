"""Per-module extraction: a resolved task -> binds, unit and container operations, file writes, notes."""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from safeapply.intent.load import UNRESOLVED, ResolvedTask, as_list
from safeapply.intent.model import Bind, ContainerOp, FileWrite, Intent, Note, UnitOp
from safeapply.intent.ports import (
    PortSpec,
    parse_compose_port,
    parse_publish,
    parse_run,
    parse_unit_file,
    ports_in_command,
    ports_in_config,
    ports_in_unit,
)

UNIT_DIRS = ("/etc/systemd/system/", "/lib/systemd/system/", "/usr/lib/systemd/system/")
QUADLET_DIRS = ("/etc/containers/systemd/", "/usr/share/containers/systemd/", "/.config/containers/systemd/")
FILE_MODULES = {"file": "path", "lineinfile": "path", "blockinfile": "path", "replace": "path",
                "ini_file": "path", "unarchive": "dest", "get_url": "dest", "assemble": "dest"}
SERVICE_MODULES = ("service", "systemd", "systemd_service", "sysvinit")
DYNAMIC = ("include_tasks", "include_role", "include_vars", "include")
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# the way in: what, once changed, can shut the controller out some time after the task returned
WAY_IN_FILES = ("/etc/ssh/", "/etc/nftables", "/etc/iptables/", "/etc/ufw/", "/etc/firewalld/", "/etc/network/",
                "/etc/netplan/", "/etc/systemd/network/", "/etc/NetworkManager/", "/etc/sudoers", "/etc/pam.d/",
                "/etc/hosts.allow", "/etc/hosts.deny", "/etc/security/access.conf")
WAY_IN_UNITS = ("ssh.service", "sshd.service", "ssh.socket", "nftables.service", "iptables.service",
                "netfilter-persistent.service", "ufw.service", "firewalld.service", "networking.service",
                "systemd-networkd.service", "NetworkManager.service")
WAY_IN_MODULES = ("iptables", "ufw", "firewalld", "nftables", "nmcli", "sysctl", "reboot", "interfaces_file")
# accounts: a way in only when the task can touch the login (see account_touched)
ACCOUNT_MODULES = {"user": "name", "group": "name", "authorized_key": "user"}
ADMIN_GROUPS = frozenset({"sudo", "wheel", "admin", "adm", "root", "ssh", "sshusers", "ssh-users", "_ssh"})


PORT_MODULES = ("docker_container", "podman_container", "docker_compose_v2", "docker_compose", "docker_run",
                "podman_pod", "docker_swarm_service", *SERVICE_MODULES, *DYNAMIC, "import_tasks", "import_role")


def port_bearing(rt: ResolvedTask) -> bool:
    """Could this task start, install or publish a listener (a unit, a container, a service)?"""
    if rt.action in PORT_MODULES:
        return True
    dest = rt.args.get("dest") or rt.args.get("path")
    if isinstance(dest, str) and (dest.startswith(UNIT_DIRS) or any(d in dest for d in QUADLET_DIRS)):
        return True
    raw = rt.args.get("_raw_params") or rt.args.get("cmd") or rt.args.get("argv")
    text = " ".join(map(str, raw)) if isinstance(raw, list) else str(raw or "")
    return bool(re.search(r"\b(systemctl|docker|podman|compose)\b", text))


def account_touched(rt: ResolvedTask) -> str:
    """The one account a user/group/authorized_key task touches (a way in only if it is the host's login user),
    or "" when it may touch any login: a templated or unresolved name, `state: absent`, or admin/ssh groups."""
    key = ACCOUNT_MODULES[rt.action]
    raw = (getattr(rt.task, "args", None) or {}).get(key)
    name = rt.args.get(key)
    if not isinstance(name, str) or not name or "{{" in str(raw or "") or rt.args.get("state") == "absent":
        return ""
    groups = [rt.args.get("group"), rt.args.get("groups")] if rt.action == "user" else [name]
    listed = {g.strip() for v in groups for g in (v.split(",") if isinstance(v, str) else as_list(v))
              if isinstance(g, str)}
    if listed & ADMIN_GROUPS or any(v is not None and not isinstance(v, (str, list)) for v in groups):
        return ""
    return name


def feed(ex: Extractor, rt: ResolvedTask) -> None:
    """Add one task; one task this analysis cannot read is a warning, not a crash."""
    try:
        ex.add(rt)
    except Exception as e:  # Ansible's, a filter's or a plugin's own error
        ex.note("not-analysed", f"this task could not be analysed ({type(e).__name__}: {e})", rt)


def unit_name(name: str) -> str:
    return name if "." in name.rsplit("/", 1)[-1] else f"{name}.service"


class Extractor:
    """Feeds resolved tasks, in order, into one host's Intent."""

    def __init__(self, host: str, basedir: Path) -> None:
        self.intent = Intent(host=host)
        self.basedir = basedir
        self.written: dict[str, str | None] = {}  # dest -> rendered content (None: unknown)
        self.handlers: dict[str, str] = {}  # handler name -> unit it acts on
        self.pending: list[tuple[ResolvedTask, PortSpec]] = []  # config ports: owner known via handlers
        self.seen: set[int] = set()  # task orders fed in

    def finish(self) -> Intent:
        """Attribute config-file ports to the unit their notified handler restarts (handlers come last)."""
        for rt, spec in self.pending:
            owner = next((self.handlers[n] for n in rt.notify if n in self.handlers), "")
            self.bind(rt, spec, "config", "unit" if owner else "unknown", owner)
        self.pending.clear()
        self.intent.binds.sort(key=lambda b: b.task.order)
        i = self.intent
        i.way_in += [f"{f.task.name}: writes {f.path}" for f in i.files if f.path.startswith(WAY_IN_FILES)]
        i.way_in += [f"{u.task.name}: {u.op} {u.unit}" for u in i.units
                     if u.unit in WAY_IN_UNITS and u.op not in ("enable", "install")]
        i.way_in = list(dict.fromkeys(i.way_in))
        i.tasks = len(self.seen)
        return i

    def add(self, rt: ResolvedTask) -> None:
        self.seen.add(rt.ref.order)
        for problem in rt.unresolved:
            self.note("unresolved", problem, rt)
        if getattr(rt.task, "async_val", 0) and getattr(rt.task, "poll", None) == 0:
            self.intent.way_in.append(f"{rt.ref.name}: runs on after the play (async, poll: 0)")
        if rt.action in WAY_IN_MODULES:
            self.intent.way_in.append(f"{rt.ref.name}: {rt.action}")
        if rt.action in ACCOUNT_MODULES:
            account = account_touched(rt)
            if account:
                self.intent.way_in_accounts[f"{rt.ref.name}: {rt.action} {account}"] = account
            else:
                self.intent.way_in.append(f"{rt.ref.name}: {rt.action}")
        if rt.ref.handler and rt.action in SERVICE_MODULES and isinstance(rt.args.get("name"), str):
            for key in [rt.task.name, rt.task.get_name(), *as_list(getattr(rt.task, "listen", None))]:
                self.handlers[str(key)] = unit_name(rt.args["name"])
        handler = getattr(self, f"_{rt.action}", None)
        if rt.action in SERVICE_MODULES:
            self._service(rt)
        elif rt.action in FILE_MODULES:
            self._file(rt, rt.args.get(FILE_MODULES[rt.action]))
        elif rt.action in DYNAMIC and not rt.followed:
            what = "its variables are not loaded" if rt.action == "include_vars" else "its tasks are not analysed"
            self.note("dynamic", f"{rt.action} could not be followed before the run: {what}", rt)
        elif handler is not None:
            handler(rt)

    def note(self, kind: str, message: str, rt: ResolvedTask) -> None:
        self.intent.notes.append(Note(kind, message, rt.ref, port_bearing(rt)))

    def bind(self, rt: ResolvedTask, spec: PortSpec, via: str, owner_kind: str, owner: str) -> None:
        self.intent.binds.append(Bind(spec.proto, spec.address, spec.port, rt.ref, via, owner_kind, owner))

    def unit_op(self, rt: ResolvedTask, unit: str, op: str) -> None:
        self.intent.units.append(UnitOp(unit, op, rt.ref))

    # -- services -------------------------------------------------------------------------------------

    def _service(self, rt: ResolvedTask) -> None:
        a = rt.args
        if not isinstance(a.get("name"), str):
            return
        unit = unit_name(a["name"])
        state = {"started": "start", "stopped": "stop", "restarted": "restart", "reloaded": "reload"}
        if a.get("state") in state:
            self.unit_op(rt, unit, state[a["state"]])
        if a.get("enabled") in (True, False, "yes", "no", "true", "false"):
            self.unit_op(rt, unit, "enable" if a["enabled"] in (True, "yes", "true") else "disable")
        if a.get("masked") in (True, "yes", "true"):
            self.unit_op(rt, unit, "mask")

    def _command(self, rt: ResolvedTask) -> None:
        raw = rt.args.get("_raw_params") or rt.args.get("cmd") or rt.args.get("argv") or ""
        text = " ".join(map(str, raw)) if isinstance(raw, list) else str(raw)
        for part in re.split(r"&&|;|\|\||\n", text):
            self._command_part(rt, part.strip())

    _shell = _command

    def _command_part(self, rt: ResolvedTask, cmd: str) -> None:
        try:
            argv = shlex.split(cmd)
        except ValueError:
            return
        if len(argv) >= 3 and argv[0].endswith("systemctl"):
            verbs = {"start": "start", "stop": "stop", "restart": "restart", "enable": "enable",
                     "disable": "disable", "mask": "mask"}
            op = verbs.get(argv[1])
            units = [unit_name(u) for u in argv[2:] if not u.startswith("-")]
            for u in units if op else ():
                self.unit_op(rt, u, op or "")
                if "--now" in argv and op in ("enable", "disable"):
                    self.unit_op(rt, u, "start" if op == "enable" else "stop")
        elif (run := parse_run(argv)) is not None:
            self._container(rt, run.engine, run.name, run.image, "started", run.network, list(run.publish),
                            list(run.command))

    # -- containers -----------------------------------------------------------------------------------

    def _docker_container(self, rt: ResolvedTask) -> None:
        a = rt.args
        ports = a.get("published_ports") or a.get("ports") or []
        self._container(rt, "docker", a.get("name"), a.get("image"), a.get("state") or "started",
                        a.get("network_mode"), ports, a.get("command"))

    def _podman_container(self, rt: ResolvedTask) -> None:
        a = rt.args
        ports = a.get("publish") or a.get("ports") or a.get("published_ports") or a.get("published") or []
        net = a.get("network") or a.get("net") or a.get("network_mode")
        self._container(rt, "podman", a.get("name"), a.get("image"), a.get("state") or "started",
                        net, ports, a.get("command"))

    def _container(self, rt: ResolvedTask, engine: str, name: Any, image: Any, state: Any, net: Any,
                   ports: Any, command: Any, unit: str = "") -> None:
        nets = net if isinstance(net, list) else [net] if net else []
        net_mode = "host" if "host" in nets else ",".join(str(n) for n in nets)
        if UNRESOLVED in (name, image, state):
            return  # already reported as unresolved
        self.intent.containers.append(ContainerOp(engine, str(name or ""), str(image or ""), str(state),
                                                  net_mode, rt.ref, unit))
        if state in ("absent", "stopped", "killed"):
            return
        owner = str(name or image or "")
        if net_mode == "host":
            found = ports_in_command(command or []) if command not in (None, UNRESOLVED) else []
            for spec in found:
                self.bind(rt, spec, "container", "container", owner)
            if not found:
                self.note("unknown-port", f"container {owner!r} uses the host network: the ports it binds "
                          "cannot be known from the playbook", rt)
            return
        for p in ports if isinstance(ports, list) else [ports]:
            for spec in parse_publish(p) if p is not UNRESOLVED else []:
                self.bind(rt, spec, "container", "container", owner)

    def _docker_compose_v2(self, rt: ResolvedTask) -> None:
        a = rt.args
        definition = a.get("definition")
        project = str(a.get("project_name") or posixpath.basename(str(a.get("project_src") or "")) or "compose")
        if not isinstance(definition, dict):
            definition = self._compose_from_src(rt, a)
        if definition is None:
            return
        state = "absent" if a.get("state") in ("absent", "stopped") else "started"
        for svc, spec in (definition.get("services") or {}).items():
            spec = spec or {}
            name = spec.get("container_name") or f"{project}-{svc}-1"
            net = "host" if spec.get("network_mode") == "host" else ""
            ports = [s for p in spec.get("ports") or [] for s in _compose_publish(p)]
            self._container(rt, "compose", name, spec.get("image", svc), state, net, ports,
                            spec.get("command"))

    _docker_compose = _docker_compose_v2

    def _compose_from_src(self, rt: ResolvedTask, a: dict[str, Any]) -> dict[str, Any] | None:
        src = a.get("project_src")
        if not isinstance(src, str):
            self.note("unresolved", "docker_compose: neither `definition` nor `project_src` is known", rt)
            return None
        names = a.get("files") or COMPOSE_FILES
        for n in names if isinstance(names, list | tuple) else [names]:
            content = self.written.get(posixpath.join(src, str(n)))
            if content is not None:
                try:
                    data = yaml.safe_load(content)
                except yaml.YAMLError as e:
                    self.note("unresolved", f"compose file in {src} is not valid YAML: {str(e).splitlines()[0]}",
                              rt)
                    return None
                return data if isinstance(data, dict) else None
        written = [posixpath.join(src, str(n)) for n in (names if isinstance(names, list | tuple) else [names])
                   if posixpath.join(src, str(n)) in self.written]
        why = f"{written[0]} is written by this playbook but its content is not known before the run" if written \
            else f"compose file in {src} is not written by this playbook"
        self.note("unresolved", f"{why}: its ports are unknown", rt)
        return None

    # -- files ----------------------------------------------------------------------------------------

    def _file(self, rt: ResolvedTask, path: Any, content: str | None = None) -> None:
        if not isinstance(path, str):
            return
        self.intent.files.append(FileWrite(path, rt.ref))
        self.written[path] = content

    def _copy(self, rt: ResolvedTask) -> None:
        a = rt.args
        content = rt.content if rt.content is not None else a.get("content")
        if not isinstance(content, str):
            content = self._read_src(rt, a.get("src"), "files", render=False)
        self._written_file(rt, a.get("dest"), a.get("src"), content)

    def _template(self, rt: ResolvedTask) -> None:
        a = rt.args
        content = rt.content if rt.content is not None else self._read_src(rt, a.get("src"), "templates", render=True)
        self._written_file(rt, a.get("dest"), a.get("src"), content)

    def _written_file(self, rt: ResolvedTask, dest: Any, src: Any, content: str | None) -> None:
        if not isinstance(dest, str):
            return
        if dest.endswith("/") and isinstance(src, str):
            dest = posixpath.join(dest, posixpath.basename(src).removesuffix(".j2"))
        self._file(rt, dest, content)
        if content is None:
            return
        if dest.startswith(UNIT_DIRS) and dest.endswith((".service", ".socket")):
            self._unit_file(rt, dest, content)
        elif any(d in dest for d in QUADLET_DIRS) and dest.endswith(".container"):
            self._quadlet(rt, dest, content)
        else:
            self.pending += [(rt, spec) for spec in ports_in_config(content)]

    def _unit_file(self, rt: ResolvedTask, dest: str, content: str) -> None:
        unit = posixpath.basename(dest)
        self.unit_op(rt, unit, "install")
        conflicts = [unit_name(c) for v in parse_unit_file(content).get("Conflicts", []) for c in v.split()]
        if conflicts:
            self.intent.conflicts[unit] = conflicts
        owner = unit.removesuffix(".socket") + ".service" if unit.endswith(".socket") else unit
        for spec in ports_in_unit(content):
            self.bind(rt, spec, "unit", "unit", unit if unit.endswith(".socket") else owner)

    def _quadlet(self, rt: ResolvedTask, dest: str, content: str) -> None:
        props = parse_unit_file(content)
        stem = posixpath.basename(dest).rsplit(".", 1)[0]
        self.unit_op(rt, f"{stem}.service", "install")
        name = (props.get("ContainerName") or [f"systemd-{stem}"])[-1]
        self._container(rt, "quadlet", name, (props.get("Image") or [""])[-1], "present",
                        (props.get("Network") or [""])[-1], props.get("PublishPort", []),
                        (props.get("Exec") or [""])[-1], unit=f"{stem}.service")

    def _read_src(self, rt: ResolvedTask, src: Any, kind: str, render: bool) -> str | None:
        if not isinstance(src, str):
            return None
        role = getattr(rt.task, "_role", None)
        bases = [Path(role._role_path)] if role is not None else []
        bases.append(Path(rt.ref.path.rsplit(":", 1)[0]).parent)
        bases.append(self.basedir)
        for base in bases:
            for cand in (base / kind / src, base / src, base.parent / kind / src):
                if cand.is_file():
                    return self._render(rt, cand, render)
        self.note("unresolved", f"{kind[:-1]} source {src!r} not found next to the playbook or role", rt)
        return None

    def _render(self, rt: ResolvedTask, path: Path, render: bool) -> str | None:
        text = path.read_text(errors="replace")
        if not render:
            return text
        try:
            return str(self._template_action(rt, path).template(_trusted(text), escape_backslashes=False))
        except Exception as e:  # Ansible's, a filter's or a plugin's own error: the file's content is unknown
            why = (str(e).strip() or type(e).__name__).splitlines()[0]
            self.note("unresolved", f"template {path.name} cannot be rendered before the run: {why}", rt)
            return None

    def _template_action(self, rt: ResolvedTask, path: Path) -> Any:
        """The templar Ansible's `template` action renders with: the task's variables plus the template-time
        ones (`ansible_managed` unless the user set it, `template_path`, `template_destpath`, ...) and the
        search path for `{% include %}` (each search path and its `templates/`)."""
        from ansible._internal._templating import _template_vars

        variables = dict(rt.templar.available_variables)
        dest = rt.args.get("dest")
        variables.update(_template_vars.generate_ansible_template_vars(
            path=str(rt.args.get("src")), fullpath=str(path), dest_path=dest if isinstance(dest, str) else None,
            include_ansible_managed="ansible_managed" not in variables))
        search = [*variables.get("ansible_search_path", []), str(self.basedir), str(path.parent)]
        search = [q for d in search for q in (str(Path(d) / "templates"), str(d))]
        return rt.templar.copy_with_new_env(searchpath=search, available_variables=variables)


def _trusted(text: str) -> Any:
    from ansible.template import trust_as_template

    return trust_as_template(text)


def _compose_publish(item: Any) -> list[str]:
    """Compose ports in the publish string syntax, so the container path parses them all alike."""
    return [f"{s.address or ''}:{s.port}:{s.port}/{s.proto}" if s.address is None or ":" not in s.address
            else f"[{s.address}]:{s.port}:{s.port}/{s.proto}" for s in parse_compose_port(item)]
