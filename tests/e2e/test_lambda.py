"""The server binary in Lambda mode against a fake Lambda Runtime API (the
protocol is documented HTTP; fake_lambda.py, no AWS here): every event shape in, the reply in
the same shape out, invocation errors for bad events, and init errors when no
worker id can be had."""

import base64
import json
import signal
import subprocess

import pytest

from conftest import worker_of
from fake_lambda import FakeLambda
from test_redis_lease import NS, RedisServer

@pytest.fixture
def runtime():
    r = FakeLambda()
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


def test_lease_expiry_default_and_explicit(katsubushi_bin, runtime):
    rds = RedisServer()
    try:
        # Lambda's default is 60 s; an explicit -lease-expiry is honoured, even
        # one equal to the server's own default (10m).
        for args, low, high in (([], 0, 60_000), (["-lease-expiry=10m"], 590_000, 600_000),
                                (["-lease-expiry=5s"], 0, 5_000)):
            proc = start(katsubushi_bin, runtime, [f"-redis={rds.url()}", "-min-worker-id=40",
                                                   "-max-worker-id=49", *args])
            try:
                request = f"e{len(args)}{low}"
                kind, r = runtime.invoke(request, http_api_v2("/id"))
                assert r["statusCode"] == 200, r
                key = f"{NS}:id:{worker_of(int(r['body']))}"
                assert low < rds.client.pttl(key) <= high, args
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=10) == 0
    finally:
        rds.stop(signal.SIGKILL)


def test_sigterm_releases_the_worker_id(lambda_server, runtime):
    proc, rds = lambda_server
    kind, r = runtime.invoke("t1", http_api_v2("/id"))
    last = int(r["body"])
    key = f"{NS}:id:{worker_of(last)}"
    assert rds.client.exists(key) == 1
    # Lambda sends SIGTERM to the runtime at shutdown; it waits in invocation/next.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert rds.client.exists(key) == 0  # given back, not left to expire
    from conftest import ms_of
    assert int(rds.client.get("{%s:id:%d}:watermark" % (NS, worker_of(last)))) >= ms_of(last)
