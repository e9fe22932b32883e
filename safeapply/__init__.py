"""safeapply: guardrails around Ansible playbook runs."""

__version__ = "0.1.0"
