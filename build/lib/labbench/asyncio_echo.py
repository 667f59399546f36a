"""What a Python user would write instead of our server: asyncio, TCP and UDP echo.

    python3 -m labbench.asyncio_echo [--port 7000] [--api streams|protocol] [--loop asyncio|uvloop]

``streams`` is the tutorials' ``start_server`` with a reader and a writer; ``protocol`` is
asyncio's lower-level ``Protocol`` (callbacks, no coroutine per read), what a user picks for
speed; ``--loop uvloop`` runs either on uvloop (libuv), when the tools image has it.
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


class TcpEcho(asyncio.Protocol):
    """Echo with callbacks; pauses reading while the peer does not take the echo."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[attr-defined]


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def main(port: int, api: str, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    if api == "streams":
        server = await asyncio.start_server(echo, host="0.0.0.0", port=port, backlog=4096)
    else:
        server = await loop.create_server(TcpEcho, host="0.0.0.0", port=port, backlog=4096)
    await loop.create_datagram_endpoint(UdpEcho, local_addr=("0.0.0.0", port))
    print(f"{loop_name} {api} echo on port {port} (tcp and udp)", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--api", choices=("streams", "protocol"), default="streams")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop  # the tools image has it when scripts/fetch-wheels.sh could download it

        uvloop.run(main(args.port, args.api, args.loop))
    else:
        asyncio.run(main(args.port, args.api, args.loop))
