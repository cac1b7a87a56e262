"""Maps the top-level ``models/`` and ``postprocess/`` folders into the ``vcam`` namespace at install time,
so site-packages never gets generic top-level names like ``models``. Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

MAPPED = {"vcam.models": "models", "vcam.postprocess": "postprocess"}


def _packages() -> list[str]:
    packages = find_namespace_packages(include=["vcam", "vcam.*"])
    for name, folder in MAPPED.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_namespace_packages(where=folder, exclude=["*__pycache__*"])]
    return packages


setup(packages=_packages(), package_dir={"vcam": "vcam", **MAPPED})
