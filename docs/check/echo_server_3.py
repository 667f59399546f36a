"""Step 3: every client at once. One thread runs an event loop (asyncio); each client is a
task that waits without holding the others; a client that does not read its echo stops only its
own task (``drain()`` waits), so the server never buffers more than one read per client.

    make check-server PROGRAM=docs/check/echo_server_3.py
"""

import asyncio
import signal

PORT = 65432


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    print(f"Connected by {writer.get_extra_info('peername')}", flush=True)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # this client went away; the others carry on
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(echo, port=PORT)  # every address, IPv4 and IPv6
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


asyncio.run(main())
