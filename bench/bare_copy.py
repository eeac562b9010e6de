"""The baseline of ``make bench``: a bare copy of the export into Kafka, as a user would write it.

    python -m bench.bare_copy BASE_URL EVENT_ID TOPIC

Pages ``/api/v2/meetings/export`` with aiohttp (4 requests in flight, 500 rows a page),
decodes each page with orjson and produces every row as a JSON value through one idempotent
confluent-kafka producer. It does nothing the connector does beyond that: no drift checks
(rows shift between pages while the export changes), no grouping, no state, no
transactions, no deletes. When every record is acknowledged it prints one JSON line,
``{"rows": N, "cpu_seconds": S}`` (CPU of the whole process, from its start), and exits.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson
from confluent_kafka import Producer

from bench.common import bootstrap

PER_PAGE = 500
CONCURRENCY = 4


async def copy(base_url: str, event_id: int, topic: str) -> int:
    """Copy every row of ``event_id`` to ``topic``; return the number of rows."""
    producer = Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True})
    failed: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failed.append(str(error))

    url = f"{base_url}/api/v2/meetings/export"
    rows = 0

    async def page(session: aiohttp.ClientSession, number: int) -> int:
        params = {"event_id": event_id, "page": number, "per_page": PER_PAGE}
        async with session.get(url, params=params) as response:
            response.raise_for_status()
            body = orjson.loads(await response.read())
        for row in body["data"]:
            while True:
                try:
                    producer.produce(
                        topic,
                        str(row["meeting_id"]).encode(),
                        orjson.dumps(row),
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
        return int(body["total"])

    async with aiohttp.ClientSession() as session:
        total = await page(session, 1)
        pages = iter(range(2, -(-total // PER_PAGE) + 1))

        async def worker() -> None:
            for number in pages:
                await page(session, number)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        rows = total
    if producer.flush(60) or failed:
        raise RuntimeError(f"records not delivered: {failed[:1]}")
    return rows


def main() -> None:
    base_url, event_id, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rows = asyncio.run(copy(base_url, event_id, topic))
    print(orjson.dumps({"rows": rows, "cpu_seconds": time.process_time()}).decode(), flush=True)


if __name__ == "__main__":
    main()
