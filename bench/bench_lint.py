"""Lint benchmark, side by side in one run on the same files (targets: cold <= bare ansible-lint, warm <= 0.2 s):

  cold  `safeapply lint --no-cache` (syntax check + ansible-lint + own rules, one CLI process)
  bare  `ansible-lint --offline` subprocess
  warm  `safeapply lint` on unchanged content (cache hit), CLI process and library call

Run once: .venv/bin/python bench/bench_lint.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 3
BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parents[1] / "safeapply" / "lint" / "rules" / "examples"
PLAYBOOK = """- name: Homelab web
  hosts: all
  become: true
  vars:
    web_port: 8080
  tasks:
    - name: Install nginx
      ansible.builtin.apt:
        name: nginx
        state: present
    - name: Config
      ansible.builtin.template:
        src: site.conf.j2
        dest: /etc/nginx/conf.d/site.conf
        mode: "0644"
      notify: Reload nginx
    - name: Restart
      ansible.builtin.shell: systemctl restart nginx
    - name: Start nginx
      ansible.builtin.service:
        name: nginx
        state: started
  handlers:
    - name: Reload nginx
      ansible.builtin.service:
        name: nginx
        state: reloaded
"""


def project(root: Path) -> list[str]:
    (root / "templates").mkdir(parents=True)
    (root / "templates" / "site.conf.j2").write_text("server { listen {{ web_port }}; }\n")
    (root / "site.yml").write_text(PLAYBOOK)
    files = ["site.yml"]
    for rule in ("invalid-choice", "world-writable", "firewall-lockout"):
        shutil.copy(EXAMPLES / rule / "fail.yml", root / f"{rule}.yml")
        files.append(f"{rule}.yml")
    return files


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def median(f: object, n: int = ROUNDS) -> float:
    return statistics.median(f() for _ in range(n))  # type: ignore[operator]


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "proj"
        files = project(root)
        env = {**os.environ, "SAFEAPPLY_STATE_DIR": str(Path(d) / "state")}
        safeapply, bare = [str(BIN / "safeapply"), "lint"], [str(BIN / "ansible-lint"), "--offline"]
        cold = median(lambda: timed([*safeapply, "--no-cache", *files], root, env))
        base = median(lambda: timed([*bare, *files], root, env))
        timed([*safeapply, *files], root, env)  # fill the cache
        warm_cli = median(lambda: timed([*safeapply, *files], root, env), 5)
        code = "import sys; from safeapply.lint import lint_paths; lint_paths(sys.argv[1:])"
        warm_lib = median(lambda: timed([sys.executable, "-c", code, *files], root, env), 5)
        os.environ["SAFEAPPLY_STATE_DIR"] = env["SAFEAPPLY_STATE_DIR"]
        os.chdir(root)
        from safeapply.lint import lint_paths

        def in_process() -> float:
            start = time.perf_counter()
            assert lint_paths(files).cached
            return time.perf_counter() - start

        warm_call = median(in_process, 5)
    print(f"files: {len(files)} playbooks, median of {ROUNDS} (warm: 5)")
    print(f"cold  safeapply lint --no-cache     {cold:6.2f} s")
    print(f"bare  ansible-lint --offline        {base:6.2f} s   cold/bare = {cold / base:.2f}x")
    print(f"warm  safeapply lint (CLI process)  {warm_cli:6.2f} s   warm/cold = {warm_cli / cold:.3f}x")
    print(f"warm  python -c lint_paths(...)     {warm_lib:6.2f} s")
    print(f"warm  lint_paths() call in-process  {warm_call * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
