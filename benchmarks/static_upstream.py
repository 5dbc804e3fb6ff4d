"""A fast static OpenAI-compatible upstream for benchmarks (asyncio, keep-alive).

Every POST gets the same chat completion, every GET a one-model list, so the
upstream costs next to nothing and the measurement is the proxy's own overhead.
Usage: python benchmarks/static_upstream.py PORT
"""

import asyncio
import json
import sys

CHAT = json.dumps({
    "id": "chatcmpl-static", "object": "chat.completion", "created": 1, "model": "static",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from upstream."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}).encode()
MODELS = json.dumps({"object": "list", "data": [{"id": "static", "object": "model",
                                                 "created": 1, "owned_by": "bench"}]}).encode()


def _response(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: keep-alive\r\n\r\n%s" % (len(body), body))


class Static(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(_response(CHAT if head.startswith("POST") else MODELS))


async def main(port: int):
    server = await asyncio.get_running_loop().create_server(Static, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
