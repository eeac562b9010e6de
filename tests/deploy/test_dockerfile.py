"""Dockerfile: hadolint, and the properties the runtime relies on."""

from __future__ import annotations

import yaml

from tests.deploy.structure import dockerfile_problems, simulator_image_problems
from tests.deploy.tools import COMPOSE_FILE, DOCKERFILE, REPO, hadolint


def test_hadolint_finds_nothing() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_structure() -> None:
    assert dockerfile_problems(DOCKERFILE) == []


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "exclude everything, then re-include what the build copies"
    assert {"!pyproject.toml", "!README.md", "!connector/", "!schemas/", "!simulator/"} <= set(
        lines
    )


def test_default_image_leaves_the_simulator_out_and_compose_builds_it_in() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert simulator_image_problems(DOCKERFILE, compose) == []
