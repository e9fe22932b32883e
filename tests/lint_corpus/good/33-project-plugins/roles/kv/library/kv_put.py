#!/usr/bin/python
DOCUMENTATION = r"""
module: kv_put
short_description: Store a key
options:
  name:
    description: Key.
    type: str
"""
from ansible.module_utils.basic import AnsibleModule

if __name__ == "__main__":
    AnsibleModule(argument_spec={"name": {"type": "str"}}).exit_json(changed=False)
