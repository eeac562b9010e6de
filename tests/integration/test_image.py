"""The container image, built and started: ``deploy/image/build.sh`` (``make image``) builds
the Dockerfile with buildah on a debootstrapped Debian base, as shipped and as the demo
variant (``WITH_SIMULATOR=true``: with the API simulator); ``buildah run`` then starts
``meetings-cdc --help`` and ``run`` from the shipped image and ``meetings-cdc simulate`` from
the demo image, as the non-root user (UID 10001), against the local broker, and the snapshot
must arrive in the changes topic.

No Docker engine is needed: buildah's chroot isolation runs the image's processes directly on
this machine, sharing its network (the test checks that: the host reaches the simulator in
the image, the connector in the image reaches the host's broker). A build that fails fails
the tests; nothing here skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.harness import ChangeLog, connector_env, free_port

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "image" / "build.sh"
IMAGE = os.environ.get("MEETINGS_CDC_TEST_IMAGE", "localhost/meetings-cdc:test")
DEMO_IMAGE = f"{IMAGE}-demo"
USER = "10001:10001"
EVENT = 1
MEETINGS = 25

# A cold build (debootstrap, then pip from PyPI) takes minutes; the fixture's time counts.
pytestmark = pytest.mark.timeout(1800)


def buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def build(image: str, *, with_simulator: bool) -> str:
    """``image``, built (or found up to date) by the ``make image`` script."""
    env = {**os.environ, "IMAGE": image, "WITH_SIMULATOR": str(with_simulator).lower()}
    result = subprocess.run(
        [str(BUILD)], env=env, capture_output=True, text=True, timeout=1700, check=False
    )
    assert result.returncode == 0, f"{BUILD.name} failed:\n{result.stderr[-6000:]}"
    return image


@pytest.fixture(scope="module")
def image() -> str:
    """The image as shipped."""
    return build(IMAGE, with_simulator=False)


@pytest.fixture(scope="module")
def demo_image(image: str) -> str:
    """The demo variant: the same plus the API simulator (``meetings-cdc simulate``)."""
    return build(DEMO_IMAGE, with_simulator=True)


@pytest.fixture
def working_container() -> Iterator[Callable[[str], str]]:
    """A factory of buildah working containers made from an image; removed at teardown."""
    made: list[str] = []

    def make(image: str) -> str:
        name = f"meetings-cdc-test-{uuid.uuid4().hex[:10]}"
        result = buildah("from", "--quiet", "--pull=never", "--name", name, image)
        assert result.returncode == 0, result.stderr
        made.append(name)
        return name

    yield make
    for name in made:
        buildah("rm", name)


def run_args(container: str, *command: str, env: dict[str, str] | None = None) -> list[str]:
    """``buildah run`` of ``command`` in ``container`` as the image's user, ``env`` only."""
    args = ["buildah", "run", "--isolation", "chroot", "--user", USER]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    return [*args, container, "--", *command]


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (buildah run -> buildah-chroot-exec -> the command)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def python_in_image(run_pid: int) -> int:
    """The image's Python process started by the ``buildah run`` with id ``run_pid``."""
    for pid in descendants(run_pid):
        with contextlib.suppress(OSError):
            argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            if argv[0].endswith(b"/opt/venv/bin/python3") or argv[0].endswith(b"python3"):
                return pid
    raise AssertionError(f"no python process under buildah run {run_pid}")


def uid_of(pid: int) -> int:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def test_image_config_and_help_as_the_non_root_user(image, working_container) -> None:
    inspected = buildah("inspect", "--type", "image", image)
    assert inspected.returncode == 0, inspected.stderr
    config = json.loads(inspected.stdout)["OCIv1"]["config"]
    assert config["Entrypoint"] == ["meetings-cdc"]
    assert config["Cmd"] == ["run"]
    assert config["User"] == USER
    assert "9400/tcp" in config["ExposedPorts"]

    container = working_container(image)
    whoami = subprocess.run(
        run_args(container, "id", "-u"), capture_output=True, text=True, timeout=120
    )
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.strip() == "10001"
    helped = subprocess.run(
        run_args(container, "meetings-cdc", "--help"), capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "simulate", "tail", "export"):
        assert command in helped.stdout


async def test_simulate_and_run_from_the_image_deliver_the_snapshot(
    image, demo_image, working_container, kafka_bootstrap, unique_name
) -> None:
    port = free_port()
    simulator = await asyncio.create_subprocess_exec(
        *run_args(
            working_container(demo_image),
            "meetings-cdc",
            "simulate",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--event-id",
            str(EVENT),
            "--meetings",
            str(MEETINGS),
            "--seed",
            "13",
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    connector: asyncio.subprocess.Process | None = None
    name = unique_name("image")
    env = {
        key: value
        for key, value in connector_env(
            api_base_url=f"http://127.0.0.1:{port}",
            event_ids=str(EVENT),
            bootstrap=kafka_bootstrap,
            name=name,
        ).items()
        if key.startswith("MEETINGS_CDC_")
    }
    log = ChangeLog(kafka_bootstrap, env["MEETINGS_CDC_CHANGES_TOPIC"])
    try:
        assert simulator.stdout is not None
        async with asyncio.timeout(120):
            line = (await simulator.stdout.readline()).decode()
        assert f"simulator listening on http://127.0.0.1:{port}" in line, line
        assert uid_of(python_in_image(simulator.pid)) == 10001

        # The host reaches the simulator in the image: buildah run shares the host network.
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{port}/admin/meetings", params={"event_id": EVENT}
            ) as response,
        ):
            assert response.status == 200
            truth = {meeting["meeting_id"] for meeting in await response.json()}
        assert len(truth) == MEETINGS

        connector = await asyncio.create_subprocess_exec(
            *run_args(working_container(image), "meetings-cdc", "run", env=env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

        def snapshot_complete(events: list[dict[str, object]]) -> bool:
            seen = {e["meeting_id"] for e in events if e["change_type"] == "SNAPSHOT"}
            return seen >= truth

        await log.wait_for(snapshot_complete, 120, f"the snapshot of {MEETINGS} meetings")
        assert {e["event_id"] for e in log.events} == {EVENT}
        in_image = python_in_image(connector.pid)
        assert uid_of(in_image) == 10001

        # SIGTERM to the connector in the image (buildah run itself does not forward it):
        # it ends its transaction and exits 0, which buildah run passes on.
        os.kill(in_image, signal.SIGTERM)
        async with asyncio.timeout(60):
            _, stderr = await connector.communicate()
        assert connector.returncode == 0, stderr.decode(errors="replace")[-4000:]
    finally:
        log.close()
        if connector is not None:
            await stop(connector)
        await stop(simulator)


def test_the_shipped_image_leaves_the_simulator_out_and_the_demo_has_it(
    image, demo_image, working_container
) -> None:
    shipped = subprocess.run(
        run_args(working_container(image), "meetings-cdc", "simulate", "--help"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shipped.returncode == 2, shipped.stdout + shipped.stderr
    assert "pip install meetings-cdc-simulator" in shipped.stderr
    demo = subprocess.run(
        run_args(working_container(demo_image), "meetings-cdc", "simulate", "--help"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    assert "--churn-per-second" in demo.stdout
