"""What a wheel or sdist carries: one version, and the metadata an index shows."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import subint_spawn

ROOT = Path(__file__).resolve().parent.parent


def test_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]  # read from the package
    assert subint_spawn.__version__ == importlib.metadata.version("subint-spawn")


def test_metadata_names_license_readme_and_the_pytest_extra() -> None:
    metadata = importlib.metadata.metadata("subint-spawn")
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata["Description"].lstrip().startswith("# subint_spawn")
    assert "pytest" in metadata.get_all("Provides-Extra")
    requires = metadata.get_all("Requires-Dist")
    assert "pytest-timeout; extra == 'pytest'" in requires


def test_sdist_carries_readme_and_license() -> None:
    hatch = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]
    assert {"README.md", "LICENSE"} <= set(hatch["build"]["targets"]["sdist"]["include"])
    assert (ROOT / "LICENSE").is_file()
