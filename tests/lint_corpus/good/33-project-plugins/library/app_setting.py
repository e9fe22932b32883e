#!/usr/bin/python
DOCUMENTATION = r"""
module: app_setting
short_description: Set one application setting
options:
  key:
    description: Setting name.
    type: str
    required: true
  value:
    description: Setting value.
    type: str
"""
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"key": {"type": "str", "required": True}, "value": {"type": "str"}})
    module.exit_json(changed=False)


if __name__ == "__main__":
    main()
