"""Mistake: one recv() and done. Short messages pass; anything TCP delivers in pieces does not."""

import asyncio
import signal


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read(1024)  # whatever arrived first, taken for the whole message
    writer.write(data)
    await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(echo, port=65432)  # every address, IPv4 and IPv6
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
