"""meetings-cdc: ExpoPlatform meetings export API to Avro change events in Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meetings-cdc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
