"""The connector's wheel, built as the Dockerfile builds it, holds no simulator."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.tools import REPO


def test_connector_wheel_leaves_the_simulator_out(tmp_path: Path) -> None:
    # A copy of what the Dockerfile's builder copies (the build writes build/ and egg-info)
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("connector", "schemas", "simulator"):
        shutil.copytree(
            REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("meetings_cdc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}

    assert tops == {"connector"}
    assert {"connector/cli/router.py", "connector/schemas/MeetingChange.avsc"} <= set(names)
    assert [n for n in names if "simulator" in n] == []
