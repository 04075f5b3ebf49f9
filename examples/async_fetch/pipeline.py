"""Many concurrent HTTP fetches with an ``async def`` map step, against a local server.

The example starts its own small HTTP server on ``127.0.0.1`` (a free port, stdlib
``asyncio`` streams, no dependency), which answers ``GET /items/<n>`` with a JSON record
after a short delay, like a slow API. Then::

    item_ids ─► fetch (async map step, ``concurrency`` at a time) ─► summarize

- ``item_ids`` lists the ids to fetch (``count`` of them);
- ``fetch`` is an ``async def`` step mapped over the ids: each element opens a connection
  with ``asyncio.open_connection``, sends a request and parses the JSON reply. The
  elements run side by side on the event loop, at most ``concurrency`` at a time; one
  that fails is retried (``retries=2``) and, if it still fails, leaves ``None`` in its
  slot instead of failing the step (``min_success_ratio=0.9``);
- ``summarize`` adds the prices up.

The whole thing runs inside one event loop with ``await pipeline.run_async(...)``, the
way a server or a notebook would call plait. Run it::

    python examples/async_fetch/pipeline.py
    python examples/async_fetch/pipeline.py --count 500 --concurrency 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from plait import Pipeline, step

DELAY = 0.02  # seconds the server takes per request


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one ``GET /items/<n>`` request with ``{"id": n, "price": ...}``."""
    request = await reader.readuntil(b"\r\n\r\n")
    path = request.split(b" ", 2)[1].decode()
    await asyncio.sleep(DELAY)
    try:
        item = int(path.rsplit("/", 1)[1])
        status, body = "200 OK", json.dumps({"id": item, "price": round(1 + item * 0.25, 2)})
    except ValueError:
        status, body = "404 Not Found", json.dumps({"error": f"no item at {path}"})
    data = body.encode()
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def get_json(host: str, port: int, path: str) -> Any:
    """A minimal HTTP/1.1 GET with asyncio streams; the parsed JSON body."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    status = head.split(b"\r\n", 1)[0].decode()
    if " 200 " not in f"{status} ":
        raise ConnectionError(f"GET {path}: {status}")
    return json.loads(body)


@step
def item_ids(count: int) -> list[int]:
    """The ids to fetch."""
    return list(range(1, count + 1))


@step(map="item_ids", concurrency=20, retries=2, backoff=0.05, min_success_ratio=0.9)
async def fetch(item_ids: int, host: str, port: int) -> dict[str, Any]:
    """Fetch one item from the server."""
    record: dict[str, Any] = await get_json(host, port, f"/items/{item_ids}")
    return record


@step
def summarize(fetch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """How many items came back, and their total price."""
    fetched = [item for item in fetch if item is not None]
    return {
        "fetched": len(fetched),
        "missing": len(fetch) - len(fetched),
        "total_price": round(sum(item["price"] for item in fetched), 2),
    }


def build(concurrency: int = 20) -> Pipeline:
    """The pipeline, fetching ``concurrency`` items at a time."""
    return Pipeline(
        [item_ids, fetch.with_options(concurrency=concurrency), summarize], name="async_fetch"
    )


pipeline = build()


async def main_async(count: int, concurrency: int) -> int:
    """Start the server, run the pipeline on the same event loop, stop the server."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.perf_counter()
        result = await build(concurrency).run_async(
            params={"count": count, "host": "127.0.0.1", "port": port}, on_error="continue"
        )
        elapsed = time.perf_counter() - started
    finally:
        server.close()
        await server.wait_closed()
    if not result.ok:
        print(result.summary())
        return 1
    summary = result["summarize"]
    print(
        f"fetched {summary['fetched']} items ({summary['missing']} missing) in {elapsed:.2f} s "
        f"with {concurrency} at a time; one after another would take about "
        f"{count * DELAY:.2f} s"
    )
    print(f"total price: {summary['total_price']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run :func:`main_async`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="how many items to fetch")
    parser.add_argument("--concurrency", type=int, default=20, help="fetches at a time")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args.count, args.concurrency))


if __name__ == "__main__":
    sys.exit(main())
