"""A minimal OTLP/HTTP trace receiver (and Sentry envelope sink) on loopback, for telemetry tests and benchmarks."""
from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver:
    def __init__(self):
        self.spans: list[dict] = []
        self.sentry_posts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.startswith("/v1/traces"):
                    receiver._add(body)
                else:
                    with receiver.lock:
                        receiver.sentry_posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append({
                        "service": resource.get("service.name"),
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": KINDS[span.kind],
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "status": span.status.code,  # 2 = ERROR
                        "events": [e.name for e in span.events],
                        "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                    })
        with self.lock:
            self.spans.extend(found)

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]

    def spans_with(self, key: str, value) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["attributes"].get(key) == value]


def render_tree(spans: list[dict]) -> str:
    """The spans of one trace as an indented tree (service, kind, name, duration), for reports."""
    children: dict = {}
    for s in spans:
        children.setdefault(s["parent_id"], []).append(s)
    ids = {s["span_id"] for s in spans}
    lines: list[str] = []

    def walk(span: dict, depth: int) -> None:
        ms = (span["end_ns"] - span["start_ns"]) / 1e6
        lines.append(f"{'  ' * depth}{span['service']:<12} {span['kind']:<8} {span['name']}  ({ms:.1f} ms)")
        for child in sorted(children.get(span["span_id"], []), key=lambda c: c["start_ns"]):
            walk(child, depth + 1)

    for root in sorted((s for s in spans if s["parent_id"] not in ids), key=lambda c: c["start_ns"]):
        walk(root, 0)
    return "\n".join(lines)
