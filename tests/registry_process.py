"""A real schema registry for tests: Apicurio Registry through ``deploy/local/registry.sh``
(the ``make registry-up`` path), and a small client of its Confluent-compatible REST API.

``LocalRegistry(port)`` starts and stops one on 127.0.0.1 (its management port is another
free port); storage is Apicurio's default, in memory, unless ``data_dir`` is given (an H2
file: kept across restarts). ``RegistryApi(url)`` reads and writes subjects, versions and
compatibility levels with plain HTTP, so tests see what any client of the registry sees.
``RegistryChangeLog`` reads a change topic in the Confluent wire format.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.serde import Serdes, SingleObjectFraming, WriterSchemas
from tests.integration.harness import ChangeLog

REPO = Path(__file__).resolve().parent.parent
REGISTRY_SCRIPT = REPO / "deploy" / "local" / "registry.sh"
#: Where Apicurio serves the Confluent Schema Registry API.
CCOMPAT = "/apis/ccompat/v7"
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """``registry.sh up|down`` with ``REGISTRY_PORT=port``; ``kill()`` SIGKILLs its JVM."""

    def __init__(
        self,
        port: int | None = None,
        *,
        management_port: int | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.management_port = management_port if management_port is not None else free_port()
        self.data_dir = data_dir

    @property
    def base_url(self) -> str:
        """The server's root (no Confluent API there: Apicurio's own UI and APIs)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API: what ``MEETINGS_CDC_SCHEMA_REGISTRY_URL`` takes."""
        return self.base_url + CCOMPAT

    def _env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "REGISTRY_PORT": str(self.port),
            "REGISTRY_MANAGEMENT_PORT": str(self.management_port),
        }
        env.pop("REGISTRY_DATA_DIR", None)
        if self.data_dir is not None:
            env["REGISTRY_DATA_DIR"] = str(self.data_dir)
        return env

    def _script(self, action: str) -> None:
        result = subprocess.run(
            [str(REGISTRY_SCRIPT), action],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=900,  # the first start fetches ~150 MB through Maven
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"registry.sh {action} on port {self.port} failed: {result.stderr.strip()}"
            )

    def up(self) -> None:
        self._script("up")

    def down(self) -> None:
        self._script("down")

    @property
    def pid_file(self) -> Path:
        cache = Path(os.environ.get("MEETINGS_CDC_CACHE", Path.home() / ".cache/meetings-cdc"))
        return cache / "run" / f"registry-{self.port}" / "registry.pid"

    def kill(self) -> None:
        """SIGKILL the registry's JVM (the pid ``registry.sh`` recorded): a crash."""
        pid = int(self.pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)


class RegistryError(Exception):
    """A non-2xx answer: ``status`` and the registry's JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class RegistryApi:
    """The few Confluent Schema Registry API calls the tests make, over plain HTTP."""

    def __init__(self, url: str, *, content_type: str = _CONTENT_TYPE) -> None:
        """``url``: the Confluent API's root (``content_type`` for Apicurio's own API:
        ``application/json``)."""
        self.url = url.rstrip("/")
        self.content_type = content_type

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": self.content_type, "Accept": self.content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:
                text = exc.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text.decode(errors="replace")
            raise RegistryError(exc.code, parsed) from None

    def subjects(self) -> list[str]:
        return list(self.call("GET", "/subjects"))

    def versions(self, subject: str) -> list[int]:
        return list(self.call("GET", f"/subjects/{subject}/versions"))

    def latest(self, subject: str) -> dict[str, Any]:
        """``{"subject", "version", "id", "schema"}`` of the newest version."""
        return dict(self.call("GET", f"/subjects/{subject}/versions/latest"))

    def schema(self, schema_id: int) -> str:
        return str(self.call("GET", f"/schemas/ids/{schema_id}")["schema"])

    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return int(self.call("POST", f"/subjects/{subject}/versions", {"schema": text})["id"])

    def compatibility(self, subject: str) -> str:
        """The subject's own level (Apicurio answers the global one, NONE, when it has
        none; Confluent answers 404 40408)."""
        return str(self.call("GET", f"/config/{subject}")["compatibilityLevel"])

    def set_compatibility(self, subject: str, level: str) -> None:
        self.call("PUT", f"/config/{subject}", {"compatibility": level})


class RegistryChangeLog(ChangeLog):
    """``ChangeLog`` of a topic in the Confluent wire format: schema ids are looked up in the
    registry at ``registry_url`` (once each, then cached, as any consumer does)."""

    def __init__(self, bootstrap: str, topic: str, registry_url: str) -> None:
        super().__init__(bootstrap, topic)
        self._registry = SchemaRegistryClient({"url": registry_url})
        self._serdes = Serdes(SingleObjectFraming(), WriterSchemas(self._registry))

    def close(self) -> None:
        super().close()
        self._registry.close()
