#!/usr/bin/env python3
"""An outside QUIC client for examples/quic_echo.rs, on aioquic (Python's
own QUIC stack, which shares no code with quinn): tests/it/quic.rs runs it.

    quic_echo_client.py HOST PORT CAFILE [STREAMS] [BYTES]

Opens STREAMS (default 3) bidirectional streams at once with ALPN "echo",
verifying the server's certificate against CAFILE for the name "localhost",
sends BYTES (default 100000) distinct bytes on each, ends its side, reads
the echo to the end, and checks it byte for byte. Exit status 0 if every
echo is exact, 1 on a mismatch, 2 on any error (handshake, timeout).
"""

import asyncio
import ssl
import sys

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

ALPN = "echo"
# The whole run's bound; the Rust test kills us later than that.
TIMEOUT = 30.0


def pattern(seed, length):
    """Bytes that differ per stream and per offset, so that a chunk of one
    stream in another, or out of place, shows."""
    return bytes((seed * 131 + i * 7 + (i >> 8)) & 0xFF for i in range(length))


async def echo_one(client, seed, length):
    reader, writer = await client.create_stream()
    data = pattern(seed, length)
    writer.write(data)
    writer.write_eof()
    echo = await reader.read()  # to the end of the stream
    if echo != data:
        at = next((i for i, (a, b) in enumerate(zip(echo, data)) if a != b), min(len(echo), len(data)))
        print(f"stream {seed}: sent {len(data)} bytes, got {len(echo)} back, first difference at {at}",
              file=sys.stderr)
        return False
    return True


async def run(host, port, cafile, streams, length):
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN])
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(cafile)
    configuration.server_name = "localhost"
    async with connect(host, port, configuration=configuration) as client:
        results = await asyncio.gather(*(echo_one(client, seed, length) for seed in range(streams)))
        client.close()
    return all(results)


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    streams = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    length = int(sys.argv[5]) if len(sys.argv) > 5 else 100_000
    try:
        ok = asyncio.run(asyncio.wait_for(run(host, port, cafile, streams, length), TIMEOUT))
    except Exception as error:  # handshake failure, timeout, reset: say which
        print(f"quic_echo_client.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    if ok:
        print(f"ok: {streams} streams of {length} bytes echoed exactly")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
