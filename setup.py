"""Packaging beyond pyproject.toml: the top-level mappings/ ship inside the package.

The shipped mappings stay in mappings/ at the top of the checkout (users read and copy them
there); in a wheel or a non-editable install they land in etl/mappings/, where
etl.mapping.definition finds them.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["etl", "etl.*"]), "etl.mappings"],
    package_dir={"etl.mappings": "mappings"},
    package_data={"etl.mappings": ["*.toml"]},
)
