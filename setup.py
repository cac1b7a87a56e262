"""Maps the top-level ``models/`` and ``postprocess/`` folders into the ``vcam`` namespace at install time,
so site-packages never gets generic top-level names like ``models``. Everything else is in pyproject.toml.

The installed package is the runtime only: from ``models/`` the wheel takes the shipped model files, their
cards and licences (and the package ``__init__`` files that make them findable), never the training,
conversion or export code beside them. ``tools/`` (evaluation) is not installed at all.
"""

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

MAPPED = {"vcam.models": "models", "vcam.postprocess": "postprocess"}


def _packages() -> list[str]:
    packages = find_namespace_packages(include=["vcam", "vcam.*"])
    for name, folder in MAPPED.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_namespace_packages(where=folder, exclude=["*__pycache__*", "common"])]
    return packages


class RuntimeOnlyBuildPy(build_py):
    """Leaves the Python modules under ``models/`` (training, export, conversion) out of the wheel."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        if package == "vcam.models" or package.startswith("vcam.models."):
            modules = [m for m in modules if m[1] == "__init__"]
        return modules

    def exclude_data_files(self, package, src_dir, files):
        # A development tree's egg-info can list every file under models/ as package data: keep it to data.
        files = super().exclude_data_files(package, src_dir, files)
        if package == "vcam.models" or package.startswith("vcam.models."):
            files = [f for f in files if not f.endswith((".py", ".md", ".pyc"))]
        return files


setup(packages=_packages(), package_dir={"vcam": "vcam", **MAPPED}, cmdclass={"build_py": RuntimeOnlyBuildPy})
