"""What a Python user would write instead of our server: asyncio streams, TCP and UDP echo.

    python3 -m bench.asyncio_echo [--port 7000]
"""

from __future__ import annotations

import argparse
import asyncio


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.start_server(echo, host="0.0.0.0", port=port, backlog=4096)
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(UdpEcho, local_addr=("0.0.0.0", port))
    print(f"asyncio echo on port {port} (tcp and udp)", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=7000)
    asyncio.run(main(parser.parse_args().port))
