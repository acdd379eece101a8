"""A local stand-in for the OpenAI Chat Completions endpoint (127.0.0.1 only), for the real openai/ provider path.

It answers like GPT-4o does with ``logprobs=true, top_logprobs=20``: a one-token message and the top
alternatives of that token. ``reply(request_json) -> {token: logprob}`` scripts the distribution.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self, reply: Callable[[dict], dict[str, float]]) -> None:
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, **body})
                top = reply(body)
                best = max(top, key=top.get)
                payload = {
                    "id": "chatcmpl-local",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "gpt-4o-2024-08-06"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": best, "refusal": None},
                            "logprobs": {
                                "content": [
                                    {
                                        "token": best,
                                        "logprob": top[best],
                                        "bytes": list(best.encode()),
                                        "top_logprobs": [
                                            {"token": t, "logprob": lp, "bytes": list(t.encode())}
                                            for t, lp in top.items()
                                        ],
                                    }
                                ],
                                "refusal": None,
                            },
                            "finish_reason": "length",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
