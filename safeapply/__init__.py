"""safeapply: guardrails around Ansible playbook runs.

The pipeline is `run.py` (stage order, the apply window, the run record); `outcome.py` decides how a run ends;
`errors.py` owns the exit codes; `target/` is everything that runs on a managed host; `transport/` how it is
reached. README.md's "Architecture" section has the diagram.
"""

__version__ = "0.1.0"
