"""The connector's distribution ships the connector only; the simulator is a distribution of
its own (simulator/), installed next to it for the demo, the tests and the benchmarks."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

REPO = Path(__file__).resolve().parents[2]


def pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_connector_distribution_finds_connector_packages_only() -> None:
    find = pyproject(REPO / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(REPO), include=find["include"], exclude=find.get("exclude", ()))

    assert "connector" in packages
    assert [p for p in packages if p.split(".")[0] != "connector"] == []
    assert not any("simulator" in p for p in packages), packages


def test_simulator_distribution_is_the_simulator_package() -> None:
    find = pyproject(REPO / "simulator/pyproject.toml")["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(REPO / "simulator"), include=find["include"])

    assert packages == ["meetings_simulator"]
    assert not (REPO / "connector/simulator").exists()


def test_simulator_version_is_the_connectors_and_it_requires_that_connector() -> None:
    connector = pyproject(REPO / "pyproject.toml")["project"]
    simulator = pyproject(REPO / "simulator/pyproject.toml")["project"]

    assert simulator["name"] == "meetings-cdc-simulator"
    assert simulator["version"] == connector["version"]
    assert f"meetings-cdc=={connector['version']}" in simulator["dependencies"]
