"""Build hook: ship the top-level `schemas/` inside the wheel as `reconciler/schemas/`.

Why a hook and not package-data: `schemas/` stays at the top of the repository (editors and
the pre-commit hook reference it there, and it is the single definition of the document
shapes), but an installed volctl must validate without a checkout.  The loader
(`reconciler/loading/schema.py: schema_dir`) looks in the package first, then in the source
tree.  Everything else about the build is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithSchemas(build_py):
    """build_py, then copy schemas/*.json into the built package (real files, no symlink)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the source tree's schemas/
            return
        target = Path(self.build_lib) / "reconciler" / "schemas"
        target.mkdir(parents=True, exist_ok=True)
        sources = sorted((HERE / "schemas").glob("*.json"))
        if not sources:
            raise SystemExit("setup.py: no schemas/*.json to ship")
        for src in sources:
            shutil.copyfile(src, target / src.name)


setup(cmdclass={"build_py": BuildPyWithSchemas})
