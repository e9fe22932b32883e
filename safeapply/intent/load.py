"""Load a playbook with Ansible's own classes and yield, per host, each task with its arguments resolved.

Variables come from Ansible's VariableManager with the play and the task (inventory, group_vars, host_vars,
role defaults and vars, play vars, vars_files, extra vars) and are templated with Ansible's Templar. What
cannot be resolved is returned as `UNRESOLVED` with the reason: the caller reports it, never guesses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeapply.ansible_errors import why as _why
from safeapply.errors import NoHostsMatched, UsageError
from safeapply.intent.model import TaskRef
from safeapply.intent.select import Selection, Walker, filtered_include

UNRESOLVED = object()


@dataclass
class ResolvedTask:
    ref: TaskRef
    action: str  # the short module name: docker_container, copy, service...
    args: dict[str, Any]  # templated; UNRESOLVED where a value could not be resolved
    unresolved: list[str]  # the arguments that could not be resolved, with the reason
    task: Any  # ansible Task
    templar: Any  # ansible Templar with this task's variables (for files the task renders)
    notify: list[str]
    followed: bool = False  # an include whose content is analysed in its place, or include_vars loaded
    content: str | None = None  # a template's or copy's content as Ansible rendered it (plan --check: its diff)


@contextlib.contextmanager
def lenient_module_names() -> Iterator[None]:
    """Let tasks of collections that are not installed here load (community.docker, containers.podman).

    Ansible refuses to load a task whose module it cannot find; we only read arguments, so the check is
    skipped while loading. Restored on exit.
    """
    from ansible.parsing.mod_args import ModuleArgsParser

    original = ModuleArgsParser.parse

    def parse(self: Any, skip_action_validation: bool = False) -> Any:
        return original(self, skip_action_validation=True)

    ModuleArgsParser.parse = parse
    try:
        yield
    finally:
        ModuleArgsParser.parse = original


class LookupDisabled(Exception):
    """A template asked for a lookup while the plan resolved it: nothing runs on the controller."""


class _NoLookups:
    """Stands in for Ansible's lookup plugin loader while the intent is resolved: `get` refuses every lookup."""

    def get(self, name: str, *args: Any, **kwargs: Any) -> Any:
        raise LookupDisabled(f"lookup {name!r} is not run by the plan (no lookup runs on the controller before "
                             "the gates): the value is unknown")


@contextlib.contextmanager
def lookups_disabled() -> Iterator[None]:
    """No `lookup()`/`query()`/`q()` (pipe, lines, file, env, url, custom) runs while this is active.

    Ansible 2.19 ignores `Templar.template(disable_lookups=...)`; every lookup call goes through
    `lookup_loader.get` in `ansible._internal._templating._jinja_plugins` (a private name, pinned by
    tests/test_plan_cli.py::test_lookups_do_not_run_while_planning). The template then fails with Ansible's
    own plugin-load error, and the value becomes UNRESOLVED with its task named.
    """
    from ansible._internal._templating import _jinja_plugins

    original = _jinja_plugins.lookup_loader
    _jinja_plugins.lookup_loader = _NoLookups()
    try:
        yield
    finally:
        _jinja_plugins.lookup_loader = original


def init_ansible(playbook: Path) -> None:
    """Plugin and collection loaders as `ansible-playbook` sets them up: collections from the configured paths
    and beside the playbook (`collections/`), the playbook directory's own plugin dirs."""
    from ansible.plugins.loader import add_all_plugin_dirs, init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if not AnsibleCollectionConfig.collection_finder:
        init_plugin_loader([])
    pb_dir = str(playbook.resolve().parent)
    add_all_plugin_dirs(pb_dir)
    AnsibleCollectionConfig.playbook_paths = [pb_dir]


def resolve(templar: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Template `value` element by element; unresolvable leaves become UNRESOLVED (reason in problems)."""
    if isinstance(value, dict):
        return {k: resolve(templar, v, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(templar, v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    try:
        return templar.template(value)
    except Exception as e:  # Ansible's and a plugin's own errors alike: the value is unknown
        problems.append(f"{where}: {(str(e).strip() or type(e).__name__).splitlines()[0]}")
        return UNRESOLVED


def matching_hosts(inventory: Any, patterns: Sequence[Any], limit: str | None) -> list[str]:
    """The inventory hosts the plays' `hosts:` patterns match under --limit, by Ansible's own pattern code."""
    from ansible.errors import AnsibleError

    try:
        if limit:
            inventory.subset(limit)
        names = sorted({h.name for p in patterns for h in inventory.get_hosts(p or "all")})
    except AnsibleError as e:
        raise UsageError(f"bad host pattern or --limit {limit!r}: {_why(e)}") from e
    if not names:
        raise NoHostsMatched("no inventory host matches the playbook's hosts" + (f" and --limit {limit}"
                             if limit else ""), "check -i and --limit")
    return names


def host_patterns(playbook: Path, loader: Any) -> list[Any] | None:
    """Every play's `hosts:` as written, following static `import_playbook`s, read with Ansible's DataLoader
    (vault included) and nothing templated: no variable, filter or plugin is evaluated. None when a pattern or
    an imported path is a template: then only the playbook's full resolution (after lint) knows the hosts.
    A file that is not a playbook raises UsageError, as the full resolution would."""
    patterns: list[Any] = []
    seen: set[Path] = set()

    def walk(path: Path, depth: int) -> bool:
        if path in seen:
            return True
        seen.add(path)
        for play in _plays(path, loader):
            imported = next((v for k, v in play.items() if str(k).rsplit(".", 1)[-1] == "import_playbook"), None)
            if imported is None:
                if any(_templated(h) for h in as_list(play.get("hosts"))):
                    return False
                patterns.append(play.get("hosts"))
                continue
            target = _static_file(path.parent, imported)
            if target is None or depth >= _MAX_DEPTH or not walk(target, depth + 1):
                return False  # templated, a collection's playbook, a missing file: the full resolution knows
        return True

    from safeapply.ansible_errors import ansible_warnings, vault_errors

    with ansible_warnings(), vault_errors():
        return patterns if walk(playbook.resolve(), 0) else None


_CHECK_IT = "check it with `safeapply lint`"


def _templated(text: str) -> bool:
    return "{{" in text or "{%" in text


def _plays(path: Path, loader: Any) -> list[dict[Any, Any]]:
    """The plays of one playbook file, parsed (not templated) by Ansible's DataLoader; UsageError if it is not
    a list of plays, with the problem and where."""
    from safeapply.ansible_errors import is_vault_error

    try:
        # not cached: Ansible's cache ignores `trusted_as_template`, and Playbook.load given this untrusted copy
        # would leave every template in the playbook unrendered
        plays = loader.load_from_file(str(path), cache="none")
    except Exception as e:  # Ansible's parser errors carry the file and line
        if is_vault_error(e):
            raise
        raise UsageError(f"cannot load playbook {path}: {_playbook_problem(e)}", _CHECK_IT) from e
    if not plays:
        raise UsageError(f"cannot load playbook {path}: Empty playbook, nothing to do", _CHECK_IT)
    if not isinstance(plays, list) or not all(isinstance(p, dict) for p in plays):
        what = "it is a mapping, not a list of plays" if isinstance(plays, dict) else "it is not a list of plays"
        raise UsageError(f"cannot load playbook {path}: {what} (each play starts with `- hosts: ...`)", _CHECK_IT)
    return plays


def _static_file(base: Path, imported: Any) -> Path | None:
    """An `import_playbook:` file named as written (relative to the importing playbook), None if templated or
    not a file there (a collection's playbook)."""
    if not isinstance(imported, str) or _templated(imported):
        return None
    target = (base / imported).resolve()
    return target if target.is_file() else None


class PlaybookLoader:
    def __init__(self, playbook: Path, inventory_sources: Sequence[str], extra_vars: Sequence[str],
                 selection: Selection | None = None) -> None:
        from ansible.playbook import Playbook

        from safeapply.ansible_context import get
        from safeapply.ansible_errors import ansible_warnings, is_vault_error, vault_errors

        if not playbook.is_file():
            raise UsageError(f"playbook {playbook} not found")
        init_ansible(playbook)
        self.selection = selection or Selection()
        ctx = get(list(inventory_sources) or None, list(extra_vars))  # the invocation's: parsed once, vault
        self.inventory, self.loader = ctx.inventory, ctx.loader
        self.vm = ctx.new_variable_manager()  # this walk's facts stay in this walk
        with ansible_warnings(), vault_errors():
            try:
                with lenient_module_names():
                    self.playbook = Playbook.load(str(playbook), variable_manager=self.vm, loader=self.loader)
                self.loader.set_basedir(self.playbook._basedir)  # as the playbook executor runs it: includes
            except Exception as e:  # Ansible's parser errors carry the file and line
                if is_vault_error(e):
                    raise
                raise UsageError(f"cannot load playbook {playbook}: {_playbook_problem(e)}",
                                 "check it with `safeapply lint`") from e

    def hosts(self, limit: str | None) -> list[str]:
        return matching_hosts(self.inventory, [p.hosts for p in self.playbook.get_plays()], limit)

    def tasks(self, host_name: str, facts: dict[str, Any] | None = None) -> Iterator[ResolvedTask]:
        """Every task the host would run, in order, each loop item separately, resolved for that host.
        Includes are followed as Ansible will (file and role names from variables and `facts`), include_vars
        and set_fact of known values are applied for the tasks after them. Only the tasks Ansible's play
        iterator hands this host under the selection (--tags, --skip-tags, --start-at-task) are yielded."""
        host = self.inventory.get_host(host_name)
        if facts:
            self.vm.set_nonpersistent_facts(host_name, facts)  # in memory only: never the user's fact cache
        self._order = 0
        walker = Walker(self.selection, self.inventory, self.vm)
        for play in self.playbook.get_plays():
            self._prompted(play)
            in_play = host_name in {h.name for h in self.inventory.get_hosts(play.hosts or "all")}
            self._runs = walker.runs(play, host if in_play else None)
            if not in_play:
                continue
            self._notified: list[str] = []
            handlers = play.compile_roles_handlers() + play.handlers  # include_role adds to it
            yield from self._blocks(play, host, play.compile(), False, handlers, 0)
            yield from self._flush(play, host, handlers)
        walker.check_started()

    def _prompted(self, play: Any) -> None:
        """`vars_prompt` as the playbook executor fills it when it does not ask (its listing path): the default,
        unless `-e` sets the name. A prompt without a default stays undefined: its uses are unresolved."""
        from ansible.template import Templar

        try:
            prompts = Templar(loader=self.loader, variables=self.vm.get_vars(play=play)).template(play.vars_prompt)
        except Exception:  # Ansible's or a filter's own error: the prompts' names stay undefined (unresolved)
            return
        for var in prompts or ():
            if var["name"] not in self.vm.extra_vars and var.get("default") is not None:
                play.vars[var["name"]] = var["default"]

    def _flush(self, play: Any, host: Any, handlers: list[Any]) -> Iterator[ResolvedTask]:
        """The notified handlers, at a flush point (`meta: flush_handlers`, the end of each play section), in
        the order they are defined; a handler notified by a handler runs in the same flush."""
        for _ in range(_MAX_DEPTH):
            wanted, self._notified = set(self._notified), []
            if not wanted:
                return
            for block in handlers:
                for task in _flatten(block):
                    names = {task.name, task.get_name(), *as_list(getattr(task, "listen", None))}
                    if names & wanted:
                        yield from self._blocks(play, host, [task], True, handlers, 0)

    def _blocks(self, play: Any, host: Any, blocks: list[Any], handler: bool, handlers: list[Any],
                depth: int) -> Iterator[ResolvedTask]:
        from ansible import constants as C
        from ansible.playbook.block import Block

        for block in blocks:
            for task in _flatten(block) if isinstance(block, Block) else [block]:
                if depth == 0 and not handler and task._uuid not in self._runs:
                    continue  # not selected (tags, --start-at-task): Ansible will not run it
                if task.action.rsplit(".", 1)[-1] == "meta":
                    if task.args.get("_raw_params") == "flush_handlers":
                        yield from self._flush(play, host, handlers)
                    continue
                if task.action in C._ACTION_ALL_INCLUDES:
                    found = self._include(play, host, task, handler) if depth < _MAX_DEPTH else \
                        f"{task.action}: nested more than {_MAX_DEPTH} includes deep (a recursive include?)"
                    if not isinstance(found, str):
                        self._order += 1
                        handlers += found[1]
                        yield from self._blocks(play, host, found[0], handler, handlers, depth + 1)
                        continue
                    for rt in self._resolve(play, host, task, self._order, handler):
                        rt.unresolved.append(found)
                        yield rt
                else:
                    for rt in self._resolve(play, host, task, self._order, handler):
                        self._notified += rt.notify
                        yield rt
                self._order += 1

    def _include(self, play: Any, host: Any, task: Any, handler: bool) -> tuple[list[Any], list[Any]] | str:
        """The blocks (and handler blocks) an include_tasks/include_role brings in for this host, found and
        loaded by Ansible's own code (`IncludedFile`, the strategy's loader); or why it cannot be followed."""
        try:
            return self._follow(play, host, task, handler)
        except Exception as e:  # Ansible's or a plugin's own error: the include is reported, the plan goes on
            return f"{task.action}: {_why(e)}"

    def _follow(self, play: Any, host: Any, task: Any, handler: bool) -> tuple[list[Any], list[Any]] | str:
        from types import SimpleNamespace

        from ansible import constants as C
        from ansible.errors import AnsibleError
        from ansible.executor.task_result import _RawTaskResult
        from ansible.playbook.included_file import IncludedFile
        from ansible.plugins.strategy import StrategyBase
        from ansible.template import Templar

        variables = self.vm.get_vars(play=play, host=host, task=task)
        templar = Templar(loader=self.loader, variables=variables)
        try:
            if task.when and not all(templar.evaluate_conditional(w) for w in task.when):
                return [], []  # decided before the run: not included on this host
        except AnsibleError:
            pass  # may be included: follow it
        items, loop_problem = self._loop_items(task, templar)
        if loop_problem:
            return f"{task.action}: its loop is not known ({loop_problem})"
        results: list[dict[str, Any]] = []
        for item in items:
            t = templar if item is _NO_LOOP else templar.copy_with_new_env(
                available_variables={**variables, _loop_var(task): item})
            problems: list[str] = []
            args = resolve(t, dict(task.args), "args", problems)
            if problems:
                return f"{task.action}: its name is not known before the run ({problems[0]})"
            result: dict[str, Any] = {"include_args": args}
            if task.action in C._ACTION_INCLUDE_TASKS:
                result["include"] = args.pop("_raw_params", None) or args.pop("file", None)
            if item is not _NO_LOOP:
                result |= {_loop_var(task): item, "ansible_loop_var": _loop_var(task)}
            results.append(result)
        data = {"results": results} if task.loop is not None else results[0]
        raw = _RawTaskResult(host=host, task=task, return_data=data, task_fields={})
        iterator = SimpleNamespace(_play=play)
        strategy: Any = SimpleNamespace(_loader=self.loader, _variable_manager=self.vm)
        strategy._copy_included_file = lambda inc: StrategyBase._copy_included_file(strategy, inc)
        blocks: list[Any] = []
        handlers: list[Any] = []
        try:
            for inc in IncludedFile.process_include_results([raw], iterator, self.loader, self.vm):
                if inc._is_role:
                    new_blocks, new_handlers = strategy._copy_included_file(inc).get_block_list(
                        play=play, variable_manager=self.vm, loader=self.loader)
                    blocks += new_blocks
                    handlers += new_handlers
                else:
                    blocks += StrategyBase._load_included_file(strategy, inc, iterator, is_handler=handler,
                                                               handle_stats_and_callbacks=False) or []
        except AnsibleError as e:
            return f"{task.action}: {_why(e)}"
        return (blocks if handler else filtered_include(blocks, self.vm, play, host)), handlers

    def _resolve(self, play: Any, host: Any, task: Any, order: int, handler: bool) -> Iterator[ResolvedTask]:
        from ansible.template import Templar

        variables = self.vm.get_vars(play=play, host=host, task=task)
        templar = Templar(loader=self.loader, variables=variables)
        conditional = False
        try:
            if task.when and not all(templar.evaluate_conditional(w) for w in task.when):
                return  # decided before the run: the task is skipped on this host
        except Exception:  # Ansible's or a filter's own error: unknown before the run
            conditional = True  # depends on facts or registered results: assume it may run
        ref = TaskRef(order=order, play=play.get_name(), name=task.get_name(), action=task.action,
                      path=task.get_path() or "", handler=handler, conditional=conditional)
        items, loop_problem = self._loop_items(task, templar)
        for item in items:
            problems = [loop_problem] if loop_problem else []
            t = templar if item is _NO_LOOP else templar.copy_with_new_env(
                available_variables={**variables, _loop_var(task): item})
            args = resolve(t, dict(task.args), "args", problems)
            rt = ResolvedTask(ref=ref, action=task.action.rsplit(".", 1)[-1], args=args, unresolved=problems,
                              task=task, templar=t, notify=as_list(task.notify))
            if not conditional and not problems:
                self._apply_vars(host, rt)
            yield rt

    def _apply_vars(self, host: Any, rt: ResolvedTask) -> None:
        """include_vars of a file found where Ansible looks, and set_fact of known values, as the strategy
        applies them: for the tasks after this one."""
        from ansible import constants as C
        from ansible.errors import AnsibleError

        task, args = rt.task, rt.args
        if task.action in C._ACTION_SET_FACT and not args.get("cacheable"):
            self.vm.set_nonpersistent_facts(host.name, {k: v for k, v in args.items() if k != "cacheable"})
        elif task.action in C._ACTION_INCLUDE_VARS:
            source = args.get("_raw_params") or args.get("file")
            if not isinstance(source, str) or args.get("dir"):
                return
            try:
                path = self.loader.path_dwim_relative_stack(task.get_search_path(), "vars", source)
                data = self.loader.load_from_file(path)
            except AnsibleError as e:
                rt.unresolved.append(f"include_vars {source}: {_why(e)}")
                return
            if isinstance(data, dict):
                name = args.get("name")
                for k, v in ({name: data} if isinstance(name, str) else data).items():
                    self.vm.set_host_variable(host.name, k, v)
                rt.followed = True

    @staticmethod
    def _loop_items(task: Any, templar: Any) -> tuple[list[Any], str | None]:
        if task.loop is None:
            return [_NO_LOOP], None
        if task.loop_with not in (None, "items", "list"):
            return [_NO_LOOP], f"with_{task.loop_with}: loop not analysed"
        problems: list[str] = []
        items = resolve(templar, task.loop, "loop", problems)
        if items is UNRESOLVED or not isinstance(items, list):
            return [_NO_LOOP], (problems or ["loop: not a list"])[0]
        if task.loop_with == "items":
            items = [x for i in items for x in (i if isinstance(i, list) else [i])]
        return items, None


_NO_LOOP = object()
_MAX_DEPTH = 32  # nested includes followed; deeper ones are reported, as a recursive include would be


def _playbook_problem(e: Exception) -> str:
    """One line: what is wrong, and where (file:line:column, from the origin Ansible tags its errors with)."""
    text = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
    where = getattr(e, "obj", None)
    if where is not None and type(where).__name__ == "Origin" and str(where) not in text:
        text = f"{text} (at {where})"
    if "must be a list of plays" in text:
        return "it is a mapping, not a list of plays (each play starts with `- hosts: ...`)"
    if "surrogates not allowed" in text or "could not be decoded" in text:
        return "it is not UTF-8 text"
    return text


def as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def _loop_var(task: Any) -> str:
    lc = task.loop_control
    return str(getattr(lc, "loop_var", None) or "item")


def _flatten(block: Any) -> Iterator[Any]:
    from ansible.playbook.block import Block

    for part in (block.block, block.always):  # rescue runs only on failure
        for t in part or ():
            if isinstance(t, Block):
                yield from _flatten(t)
            elif t.action.rsplit(".", 1)[-1] != "meta" or t.args.get("_raw_params") == "flush_handlers":
                yield t  # meta tasks other than flush_handlers change nothing the plan looks at
