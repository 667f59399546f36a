"""Mistake: bound to 127.0.0.1. Works on the laptop, and nobody else can reach it."""

import asyncio
import signal


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()  # a client that does not read holds only this task
    except ConnectionError:
        pass  # this client went away; the others carry on
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(echo, host="127.0.0.1", port=65432)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
