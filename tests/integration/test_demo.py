"""``make demo`` (deploy/local/demo.sh) on non-default ports: loopback only, SNAPSHOT events
stream by, and Ctrl-C stops every process it started and deletes its topics; with
``DEMO_REGISTRY=1``, through the session's schema registry, whose subjects it deletes too."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.registry_process import CCOMPAT, RegistryApi

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if fields[3] == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry))
    return members


@pytest.mark.parametrize("registry", [False, True], ids=["no-registry", "registry"])
def test_demo_binds_loopback_streams_snapshots_and_stops_cleanly(
    kafka_bootstrap: str, tmp_path: Path, registry: bool, request: pytest.FixtureRequest
) -> None:
    sim_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETINGS_CDC_")}
    env.update(
        {
            "PY": sys.executable,
            "KAFKA_PORT": kafka_bootstrap.rsplit(":", 1)[1],  # a running broker: used, kept
            "DEMO_SIMULATOR_PORT": str(sim_port),
            "DEMO_METRICS_PORT": str(metrics_port),
            "TMPDIR": str(tmp_path),  # its logs, kept at exit
        }
    )
    api = None
    if registry:
        url: str = request.getfixturevalue("registry_url")
        if not url.endswith(CCOMPAT):
            pytest.skip("the test registry is not Apicurio on 127.0.0.1 (REGISTRY_PORT)")
        api = RegistryApi(url)
        # a running registry: used, kept; the demo's subjects deleted at exit
        env.update({"DEMO_REGISTRY": "1", "REGISTRY_PORT": url.rsplit(":", 1)[1].split("/")[0]})
    proc = subprocess.Popen(
        ["bash", str(REPO / "deploy" / "local" / "demo.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # so the test can see (and, failing, stop) all it started
    )
    assert proc.stdout is not None
    topics: list[str] = []
    snapshots = 0
    try:
        deadline = time.monotonic() + 40
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            # 200 meetings are seeded; churn may delete a few before the snapshot reads them
            while snapshots < 150 and selector.select(max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if not line:
                    break
                if "follow (200 SNAPSHOT" in line:
                    topics.append(line.split("change events of ", 1)[1].split()[0])
                snapshots += line.startswith("SNAPSHOT")
        assert snapshots >= 150, f"{snapshots} SNAPSHOT events within 40 s"
        assert listening(sim_port) == {"0100007F"}  # 127.0.0.1 only
        assert listening(metrics_port) == {"0100007F"}
        if api is not None:
            assert f"{topics[0]}-value" in api.subjects()

        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "demo: stopping" in rest
    assert f"demo: logs kept in {tmp_path}/meetings-cdc-demo-" in rest
    (logs,) = tmp_path.glob("meetings-cdc-demo-*")
    assert (logs / "connector.log").stat().st_size > 0
    assert session_members(proc.pid) == []
    assert topics
    prefix = topics[0].rsplit(".meetings.changes", 1)[0] + "."
    left = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert [t for t in left if t.startswith(prefix)] == []
    if api is not None:
        assert "demo: deleted subjects" in rest
        assert [s for s in api.subjects() if s.startswith(prefix)] == []
