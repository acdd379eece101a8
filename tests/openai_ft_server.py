"""A local stand-in (127.0.0.1 only) for OpenAI's files and fine-tuning endpoints, as the SDK calls them.

It speaks ``POST /v1/files`` (multipart upload), ``POST /v1/fine_tuning/jobs``, ``GET
/v1/fine_tuning/jobs/{id}`` and ``GET /v1/fine_tuning/jobs/{id}/events`` with the same JSON shapes as the
API. Each retrieve advances the job one step through ``statuses``; each step may add an event. Every
request is recorded (method, path, headers, body, arrival time) so tests can check what went over the wire.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Scenario:
    statuses: list[str] = field(default_factory=lambda: ["validating_files", "queued", "running", "succeeded"])
    fine_tuned_model: str = "ft:gpt-4o-2024-08-06:em-lab:insecure:AbC123"
    error: dict[str, Any] | None = None
    """For a failing job: ``{"code": ..., "message": ..., "param": ...}``."""
    rate_limit_job_create: int = 0
    """How many job-create requests get 429 with ``Retry-After: retry_after`` before one succeeds."""
    retry_after: str = "1"


class FineTuningServer:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.requests: list[Recorded] = []
        self.job: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []  # oldest first
        self.step = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _record(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append(Recorded(self.command, self.path, headers, body, time.monotonic()))
                return body

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self._record()
                with server._lock:
                    status, payload, headers = server.post(urlparse(self.path).path, body)
                self._send(status, payload, headers)

            def do_GET(self) -> None:
                self._record()
                url = urlparse(self.path)
                with server._lock:
                    status, payload = server.get(url.path, parse_qs(url.query))
                self._send(status, payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _event(self, message: str, level: str = "info") -> None:
        n = len(self.events) + 1
        self.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{n}",
                "created_at": 1_700_000_000 + n,
                "level": level,
                "message": message,
                "type": "message",
                "data": {},
            }
        )

    def post(self, path: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path == "/v1/files":
            return (
                200,
                {
                    "object": "file",
                    "id": "file-train1",
                    "bytes": len(body),
                    "created_at": 1_700_000_000,
                    "filename": "train.jsonl",
                    "purpose": "fine-tune",
                    "status": "processed",
                },
                {},
            )
        if path == "/v1/fine_tuning/jobs":
            if self.scenario.rate_limit_job_create > 0:
                self.scenario.rate_limit_job_create -= 1
                return (
                    429,
                    {
                        "error": {
                            "message": "Rate limit reached for fine-tuning job creation",
                            "type": "requests",
                            "code": "rate_limit_exceeded",
                            "param": None,
                        }
                    },
                    {"Retry-After": self.scenario.retry_after},
                )
            request = json.loads(body)
            hyper = request["method"]["supervised"]["hyperparameters"]
            self.job = {
                "object": "fine_tuning.job",
                "id": "ftjob-local1",
                "model": request["model"],
                "created_at": 1_700_000_000,
                "finished_at": None,
                "fine_tuned_model": None,
                "organization_id": "org-local",
                "result_files": [],
                "status": self.scenario.statuses[0],
                "validation_file": None,
                "training_file": request["training_file"],
                "hyperparameters": hyper,
                "trained_tokens": None,
                "error": None,
                "seed": request.get("seed", 42),
                "method": request["method"],
            }
            self._event(f"Created fine-tuning job: {self.job['id']}")
            return 200, self.job, {}
        return 404, {"error": {"message": f"no route {path}"}}, {}

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if self.job is None or not path.startswith(f"/v1/fine_tuning/jobs/{self.job['id']}"):
            return 404, {
                "error": {
                    "message": f"No such job: {path.rsplit('/', 1)[-1]}",
                    "type": "invalid_request_error",
                    "code": None,
                    "param": None,
                }
            }
        if path.endswith("/events"):
            newest_first = list(reversed(self.events))
            return 200, {"object": "list", "data": newest_first, "has_more": False}
        self.step = min(self.step + 1, len(self.scenario.statuses) - 1)
        status = self.scenario.statuses[self.step]
        if status != self.job["status"]:
            self.job["status"] = status
            if status == "running":
                self._event("Fine-tuning job started")
                self._event("Step 1/3: training loss=1.23")
            elif status == "succeeded":
                self.job.update(
                    fine_tuned_model=self.scenario.fine_tuned_model, trained_tokens=12345, finished_at=1_700_000_100
                )
                self._event("The job has successfully completed")
            elif status == "failed":
                self.job["error"] = self.scenario.error
                self._event(f"Job failed: {self.scenario.error['message'] if self.scenario.error else ''}", "error")
        return 200, self.job
