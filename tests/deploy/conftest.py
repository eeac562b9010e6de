"""Rendered manifests, built once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.tools import K8S, documents, kustomize_build

KUSTOMIZATIONS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """``kustomize build`` output of the base and of every overlay."""
    return {name: kustomize_build(path) for name, path in KUSTOMIZATIONS.items()}


@pytest.fixture(scope="session")
def rendered_docs(rendered: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The rendered documents of the base and of every overlay."""
    return {name: documents(text) for name, text in rendered.items()}
