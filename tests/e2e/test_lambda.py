"""The server binary in Lambda mode against a fake Lambda Runtime API (the
protocol is documented HTTP; no AWS here): every event shape in, the reply in
the same shape out, invocation errors for bad events, and init errors when no
worker id can be had."""

import base64
import json
import queue
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import worker_of
from test_redis_lease import NS, RedisServer

BASE = "/2018-06-01/runtime"


class FakeRuntime:
    def __init__(self):
        self.events = queue.Queue()
        self.responses = {}  # request id -> (kind, json body)
        self.init_errors = []
        self.done = threading.Condition()
        self.closing = False
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{BASE}/invocation/next":
                    return self.reply(404)
                while True:
                    try:
                        request_id, event = runtime.events.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if runtime.closing:
                            return self.reply(500, b"shutting down")
                body = event if isinstance(event, bytes) else json.dumps(event).encode()
                self.reply(200, body, [("Lambda-Runtime-Aws-Request-Id", request_id),
                                       ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = self.path[len(BASE) + 1:].split("/")
                with runtime.done:
                    if parts == ["init", "error"]:
                        runtime.init_errors.append((self.headers.get("Lambda-Runtime-Function-Error-Type"),
                                                    json.loads(body)))
                    elif len(parts) == 3 and parts[0] == "invocation":
                        runtime.responses[parts[1]] = (parts[2], json.loads(body))
                    runtime.done.notify_all()
                self.reply(202, b'{"status":"OK"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def invoke(self, request_id, event, timeout=15):
        self.events.put((request_id, event))
        with self.done:
            assert self.done.wait_for(lambda: request_id in self.responses, timeout), request_id
            return self.responses[request_id]

    def close(self):
        self.closing = True
        self.server.shutdown()


@pytest.fixture
def runtime():
    r = FakeRuntime()
    yield r
    r.close()


def start(binary, runtime, args):
    return subprocess.Popen([binary, *args], env={"AWS_LAMBDA_RUNTIME_API": runtime.api,
                                                  "_HANDLER": "katsubushi"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def lambda_server(katsubushi_bin, runtime):
    rds = RedisServer()
    proc = start(katsubushi_bin, runtime, [f"-redis={rds.url()}", "-min-worker-id=40",
                                           "-max-worker-id=49"])
    yield proc, rds
    runtime.closing = True
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    rds.stop(signal.SIGKILL)


def api_gateway_v1(path, query=None, multi_query=None, headers=None, body=None, b64=False):
    return {"resource": "/{proxy+}", "path": path, "httpMethod": "GET",
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
            "queryStringParameters": query, "multiValueQueryStringParameters": multi_query,
            "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "GET", "stage": "prod"},
            "body": body, "isBase64Encoded": b64}


def http_api_v2(path, raw_query="", headers=None, method="GET", function_url=False):
    context = {"http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
               "routeKey": "$default", "stage": "$default"}
    if function_url:
        context["domainName"] = "abc.lambda-url.ap-northeast-1.on.aws"
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": raw_query,
            "headers": headers or {}, "requestContext": context, "isBase64Encoded": False}


def alb(path, query=None, headers=None, multi=False):
    event = {"requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:..."}},
             "httpMethod": "GET", "path": path, "body": "", "isBase64Encoded": False}
    if multi:
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()}
        event["multiValueHeaders"] = {k: [v] for k, v in (headers or {}).items()}
    else:
        event["queryStringParameters"] = query or {}
        event["headers"] = headers or {}
    return event


def test_every_event_shape_is_answered_in_its_own_shape(lambda_server, runtime):
    proc, rds = lambda_server
    # API Gateway REST (payload 1.0): an ID, as JSON.
    kind, r = runtime.invoke("r1", api_gateway_v1("/id", headers={"Accept": "application/json"}))
    assert kind == "response" and r["statusCode"] == 200
    assert "multiValueHeaders" in r  # it came with multiValueHeaders
    first = int(json.loads(r["body"])["id"])
    assert 40 <= worker_of(first) <= 49
    assert rds.client.exists(f"{NS}:id:{worker_of(first)}") == 1

    # HTTP API payload 2.0: the raw query string.
    kind, r = runtime.invoke("r2", http_api_v2("/ids", "n=3"))
    assert r["statusCode"] == 200 and "statusDescription" not in r
    ids = [int(x) for x in r["body"].split("\n")]
    assert len(ids) == 3 and min(ids) > first

    # Function URL (the 2.0 shape): decode one of them.
    kind, r = runtime.invoke("r3", http_api_v2("/decode", f"id={ids[0]}", function_url=True))
    assert r["statusCode"] == 200 and json.loads(r["body"])["worker_id"] == worker_of(first)

    # ALB, single-value: query values arrive still URL-encoded ("%32" is "2").
    kind, r = runtime.invoke("r4", alb("/ids", query={"n": "%32"}))
    assert r["statusCode"] == 200 and r["statusDescription"] == "200 OK"
    assert len(r["body"].split("\n")) == 2 and "headers" in r

    # ALB, multi-value headers on: answered with multiValueHeaders.
    kind, r = runtime.invoke("r5", alb("/id", query={}, headers={"accept": "application/json"}, multi=True))
    assert r["statusCode"] == 200 and r["multiValueHeaders"]["Content-Type"] == ["application/json"]

    # API Gateway 1.0 with decoded query values: re-encoded before routing.
    kind, r = runtime.invoke("r6", api_gateway_v1("/ids", query={"n": "2"}, multi_query={"n": ["2"]}))
    assert len(r["body"].split("\n")) == 2

    # A base64 body is decoded (the router ignores GET bodies, but it must parse).
    kind, r = runtime.invoke("r7", api_gateway_v1("/healthz", body=base64.b64encode(b"x").decode(), b64=True))
    assert r["statusCode"] == 200 and r["body"] == "ok\n"

    # Errors in HTTP terms: a bad count, an unknown route, a wrong method.
    assert runtime.invoke("r8", http_api_v2("/ids", "n=0"))[1]["statusCode"] == 400
    assert runtime.invoke("r9", http_api_v2("/nope"))[1]["statusCode"] == 404
    assert runtime.invoke("r10", http_api_v2("/id", method="POST"))[1]["statusCode"] == 405


def test_bad_events_are_invocation_errors_and_the_loop_goes_on(lambda_server, runtime):
    kind, r = runtime.invoke("b1", b"{not json")
    assert kind == "error" and r["errorType"] == "InvalidEvent"
    kind, r = runtime.invoke("b2", {"Records": [{"eventSource": "aws:sqs"}]})
    assert kind == "error" and "not an HTTP event" in r["errorMessage"]
    kind, r = runtime.invoke("b3", api_gateway_v1("/id", body="***", b64=True))
    assert kind == "error" and "base64" in r["errorMessage"]
    kind, r = runtime.invoke("b4", b"[" * 100000)
    assert kind == "error" and "deeply" in r["errorMessage"]
    kind, r = runtime.invoke("ok", http_api_v2("/id"))
    assert kind == "response" and r["statusCode"] == 200


def test_a_static_worker_id_is_an_init_error(katsubushi_bin, runtime):
    proc = start(katsubushi_bin, runtime, ["-worker-id=5"])
    assert proc.wait(timeout=10) == 1
    (kind, error), = runtime.init_errors
    assert kind == "Runtime.InitError" and "static -worker-id is refused" in error["errorMessage"]


def test_no_worker_id_source_is_an_init_error(katsubushi_bin, runtime):
    proc = start(katsubushi_bin, runtime, [])
    assert proc.wait(timeout=10) == 1
    (kind, error), = runtime.init_errors
    assert "please set -worker-id or -redis" in error["errorMessage"]


def test_unreachable_redis_is_a_503_not_a_guess(katsubushi_bin, runtime):
    from conftest import free_port
    proc = start(katsubushi_bin, runtime, [f"-redis=redis://127.0.0.1:{free_port()}/0?ns={NS}"])
    try:
        kind, r = runtime.invoke("u1", http_api_v2("/id"))
        assert kind == "response" and r["statusCode"] == 503
        assert "Redis" in r["body"]
        assert runtime.invoke("u2", http_api_v2("/healthz"))[1]["statusCode"] == 503
    finally:
        runtime.closing = True
        proc.wait(timeout=10)
