"""Ansible callback plugins that safeapply puts on ANSIBLE_CALLBACK_PLUGINS for its own runs (see apply.py)."""
