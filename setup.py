"""The server distribution's file list (everything else is in pyproject.toml). The top-level templates/
and static/ folders stay where they are in the checkout and are installed as hitl/bundled/templates and
hitl/bundled/static, which pyproject.toml alone cannot map."""

from setuptools import find_packages, setup

APPS = ["hitl", "hitl.*", "flows", "flows.*", "accounts", "accounts.*", "audit", "audit.*"]
BUNDLED = {"hitl.bundled.templates": "templates", "hitl.bundled.static": "static"}

setup(
    packages=find_packages(include=APPS) + list(BUNDLED),
    package_dir=BUNDLED,
    package_data={name: ["**/*"] for name in BUNDLED},
    include_package_data=False,
)
