"""`python3 <version>.pyz ENTRY ARGS...` (the installed zip) or `python3 -m safeapply.target ENTRY ARGS...`."""

import sys

from safeapply.target.entries import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
