import sys
root = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower() and "editable" not in getattr(f, "__module__", "")]
sys.path.insert(0, root)
from reconciler.cli.main import main
sys.exit(main())
