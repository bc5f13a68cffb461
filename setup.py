"""Package list for setuptools (all other metadata is in pyproject.toml).

``kernels/`` (CUDA C sources, prebuilt fatbins) sits at the top of the repository but is
installed as ``hecrypt._kernels`` so that an installed hecrypt finds its kernels; it is a
data-only package (no Python code).
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["hecrypt", "hecrypt.*"]) + ["hecrypt._kernels"],
    package_dir={"hecrypt._kernels": "kernels"},
)
