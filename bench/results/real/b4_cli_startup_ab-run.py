"""Run `volctl` from the source tree given as the first argument (A/B of two checkouts).

The venv's editable-install finder would always import the main checkout; it is dropped so
that the tree on `sys.path` is the one measured.
"""

import sys

root = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, root)
from reconciler.cli.main import main  # noqa: E402 - after the path is set

sys.exit(main())
