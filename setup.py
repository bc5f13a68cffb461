"""Package list for setuptools (all other metadata is in pyproject.toml).

Every directory under ``hecrypt/`` is a package (a subpackage that forgot its
``__init__.py`` still ships).  ``kernels/`` (CUDA C sources, prebuilt fatbins) sits at the top
of the repository but is installed as ``hecrypt._kernels`` so that an installed hecrypt
finds its kernels; it is a data-only package (no Python code).
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["hecrypt", "hecrypt.*"], exclude=["*.__pycache__"])
    + ["hecrypt._kernels"],
    package_dir={"hecrypt._kernels": "kernels"},
)
