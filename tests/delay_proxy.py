"""A tcp proxy that delays every byte by a fixed time in each direction: the 100 ms of a slow WAN link
for the fault tests, where the kernel has no netem (CONFIG_NET_SCH_NETEM is not set).

    python tests/delay_proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS

Bytes keep their order; each chunk is written DELAY_MS after it was read. Prints "ready" once listening.
"""

from __future__ import annotations

import asyncio
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def later() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(later())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    try:
        await task
    except OSError:
        pass


async def main(listen: str, target: str, delay_ms: float) -> None:
    host, port = target.rsplit(":", 1)
    delay = delay_ms / 1000

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer, delay), _pump(up_reader, writer, delay))

    lhost, lport = listen.rsplit(":", 1)
    server = await asyncio.start_server(serve, lhost, int(lport))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
