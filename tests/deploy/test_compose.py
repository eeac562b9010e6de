"""docker-compose.yml: the compose specification, and the stack's wiring."""

from __future__ import annotations

import re

import yaml

from tests.deploy.structure import command_problems, compose_problems, settings_problems
from tests.deploy.tools import COMPOSE_FILE, REPO, deploycheck


def load() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def test_compose_file_meets_the_compose_specification() -> None:
    result = deploycheck("compose", COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    assert result.reports == [
        {"kind": "compose", "name": str(COMPOSE_FILE), "checks": ["compose-spec"]}
    ]


def test_compose_stack_fits_together() -> None:
    assert compose_problems(load(), REPO) == []


def test_compose_connector_settings_load_in_the_connector() -> None:
    env = {k: str(v) for k, v in load()["services"]["connector"]["environment"].items()}
    assert settings_problems(env) == []


def test_readme_documents_every_published_port() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    deploy = readme.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    for name, service in load()["services"].items():
        for port in service.get("ports", []):
            default = re.search(r":-(\d+)\}", port) or re.match(r"(\d+):", port)
            assert default, port
            assert default.group(1) in deploy, f"README Deploy lacks port of {name}"


def test_commands_given_to_the_image_parse() -> None:
    services = load()["services"]
    for name in ("simulator", "connector"):
        assert command_problems([str(a) for a in services[name]["command"]]) == [], name
