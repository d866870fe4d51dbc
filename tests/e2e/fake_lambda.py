"""A fake of the AWS Lambda Runtime API (2018-06-01) and Extensions API
(2020-01-01) at one AWS_LAMBDA_RUNTIME_API address, written from AWS's
published contract (docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html and
runtimes-extensions-api.html):

  POST /2020-01-01/extension/register   Lambda-Extension-Name (the file name),
       {"events": [...]} -> 200, Lambda-Extension-Identifier, {"functionName", ...}
  GET  /2020-01-01/extension/event/next  Lambda-Extension-Identifier -> 200,
       Lambda-Extension-Event-Identifier, {"eventType": "INVOKE"|"SHUTDOWN", ...};
       an unknown identifier -> 403
  POST /2020-01-01/extension/init/error and .../exit/error with
       Lambda-Extension-Function-Error-Type -> 202 {"status": "OK"}
  GET  /2018-06-01/runtime/invocation/next, POST .../{id}/response|error,
       POST /2018-06-01/runtime/init/error

Run as a script it prints its address and serves until interrupted.
"""

import json
import queue
import select
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNTIME = "/2018-06-01/runtime"
EXTENSION = "/2020-01-01/extension"


class Extension:
    def __init__(self, name, events):
        self.name, self.events = name, events
        self.identifier = str(uuid.uuid4())
        self.queue = queue.Queue()
        self.next_calls = 0  # how many times it asked for an event: it is idle after each


class FakeLambda:
    def __init__(self, function_name="katsubushi-test"):
        self.function_name = function_name
        self.events = queue.Queue()  # runtime invocations: (request id, event)
        self.responses = {}  # request id -> (kind, json body)
        self.init_errors = []  # runtime init errors: (error type header, body)
        self.extensions = {}  # identifier -> Extension
        self.extension_errors = []  # (path, identifier, error type header, body)
        self.register_requests = []  # (headers, body)
        self.done = threading.Condition()
        self.closing = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                if fake.closing and status >= 500:
                    self.close_connection = True
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the caller went away
                    return False

            def client_gone(self):
                """The caller hung up while waiting (a process that was stopped):
                its event must go to the next caller, not to a dead socket."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def body(self):
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_GET(self):
                if self.path == f"{RUNTIME}/invocation/next":
                    return self.runtime_next()
                if self.path == f"{EXTENSION}/event/next":
                    return self.extension_next()
                return self.reply(404)

            def runtime_next(self):
                while True:
                    if self.client_gone():
                        return None
                    try:
                        request_id, event = fake.events.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if fake.closing:
                            return self.reply(500, b"shutting down")
                body = event if isinstance(event, bytes) else json.dumps(event).encode()
                # A caller that hung up while we waited (a stopped process)
                # does not get it: the event goes to the next caller.
                if self.client_gone() or not self.reply(
                        200, body, [("Lambda-Runtime-Aws-Request-Id", request_id),
                                    ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))]):
                    fake.events.put((request_id, event))

            def extension_next(self):
                ext = fake.extensions.get(self.headers.get("Lambda-Extension-Identifier", ""))
                if ext is None:
                    return self.reply(403, {"errorMessage": "unknown extension identifier",
                                            "errorType": "Extension.Forbidden"})
                with fake.done:
                    ext.next_calls += 1
                    fake.done.notify_all()
                while True:
                    if self.client_gone():
                        return None
                    try:
                        event = ext.queue.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if fake.closing:
                            return self.reply(500, b"shutting down")
                if self.client_gone() or not self.reply(
                        200, event, [("Lambda-Extension-Event-Identifier", str(uuid.uuid4()))]):
                    ext.queue.put(event)

            def do_POST(self):
                body = self.body()
                if self.path == f"{EXTENSION}/register":
                    return self.register(body)
                if self.path in (f"{EXTENSION}/init/error", f"{EXTENSION}/exit/error"):
                    with fake.done:
                        fake.extension_errors.append(
                            (self.path[len(EXTENSION) + 1:], self.headers.get("Lambda-Extension-Identifier"),
                             self.headers.get("Lambda-Extension-Function-Error-Type"),
                             json.loads(body) if body else None))
                        fake.done.notify_all()
                    return self.reply(202, {"status": "OK"})
                if not self.path.startswith(RUNTIME + "/"):
                    return self.reply(404)
                parts = self.path[len(RUNTIME) + 1:].split("/")
                with fake.done:
                    if parts == ["init", "error"]:
                        fake.init_errors.append((self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                                 json.loads(body)))
                    elif len(parts) == 3 and parts[0] == "invocation":
                        fake.responses[parts[1]] = (parts[2], json.loads(body))
                    fake.done.notify_all()
                self.reply(202, {"status": "OK"})

            def register(self, body):
                name = self.headers.get("Lambda-Extension-Name")
                try:
                    events = json.loads(body)["events"]
                except (ValueError, KeyError, TypeError):
                    events = None
                if not name or not isinstance(events, list) or \
                        not set(events) <= {"INVOKE", "SHUTDOWN"}:
                    return self.reply(400, {"errorMessage": "bad registration",
                                            "errorType": "InvalidRequest"})
                ext = Extension(name, events)
                with fake.done:
                    fake.register_requests.append((dict(self.headers), json.loads(body)))
                    fake.extensions[ext.identifier] = ext
                    fake.done.notify_all()
                self.reply(200, {"functionName": fake.function_name, "functionVersion": "$LATEST",
                                 "handler": "bootstrap"},
                           [("Lambda-Extension-Identifier", ext.identifier)])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.api = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # The runtime side.
    def invoke(self, request_id, event, timeout=15):
        self.events.put((request_id, event))
        with self.done:
            assert self.done.wait_for(lambda: request_id in self.responses, timeout), request_id
            return self.responses[request_id]

    # The extension side.
    def extension(self, timeout=10):
        """The one registered extension, once it has finished its init (asked for
        its first event)."""
        with self.done:
            assert self.done.wait_for(
                lambda: len(self.extensions) == 1 and next(iter(self.extensions.values())).next_calls >= 1,
                timeout), "no extension registered and ready"
            return next(iter(self.extensions.values()))

    def send_invoke(self, ext, request_id="req-1", timeout=10):
        """Delivers INVOKE and waits until the extension is done with it (it
        asks for the next event), as Lambda does before freezing."""
        with self.done:
            calls = ext.next_calls
        self.send_invoke_async(ext, request_id)
        with self.done:
            assert self.done.wait_for(lambda: ext.next_calls > calls, timeout), "INVOKE not finished"

    def send_invoke_async(self, ext, request_id="req-1"):
        """Delivers INVOKE without waiting for the extension."""
        ext.queue.put({"eventType": "INVOKE", "deadlineMs": int(time.time() * 1000) + 30000,
                       "requestId": request_id,
                       "invokedFunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}",
                       "tracing": {"type": "X-Amzn-Trace-Id",
                                   "value": "Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Sampled=1"}})

    def send_shutdown(self, ext, budget_ms=2000, reason="spindown"):
        deadline = int(time.time() * 1000) + budget_ms
        ext.queue.put({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline})
        return deadline

    def close(self):
        self.closing = True
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    fake = FakeLambda()
    print(fake.api, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.close()
