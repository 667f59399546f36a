"""Mistake: b'' is not taken to mean "closed". The echo is right; the connection never ends."""

import asyncio
import signal


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(65536)
        if data:
            writer.write(data)
            await writer.drain()
        else:
            await asyncio.sleep(1)  # "nothing yet": waits for more that will never come


async def main() -> None:
    server = await asyncio.start_server(echo, port=65432)  # every address, IPv4 and IPv6
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
