"""The webhook trigger on a real uvicorn server on a free loopback port: authentication
(token, HMAC signature), malformed and oversized bodies, params validated before a run,
202 with the run id, run status, health, and the refusal to listen openly without a
token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from events_cases import Gate, running
from plait import Pipeline, param, step
from plait.errors import UsageError
from plait.events import Server, Webhook, signature

TOKEN = "a-long-test-token"
GATE = Gate()


@step
def greet(name: str, times: int = 1) -> str:
    return f"hello {name}" * times


def _pipeline() -> Pipeline:
    with Pipeline("greeter") as p:
        greet(name=param("name", str), times=param("times", int, default=1))
    return p


def call(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def hook_server(tmp_path: Path) -> Any:
    hook = Webhook(port=0, token=TOKEN, secret="shared-secret", max_body=2000)
    server = Server(_pipeline(), [hook], store=str(tmp_path), overlap="allow")
    with running(server):
        yield hook, server


def _wait(server: Server, run_id: str) -> str:
    import asyncio

    found = server._submissions[run_id]
    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(found.wait(), server._loop).result(60)


def test_a_post_with_the_token_starts_a_run_and_answers_202(hook_server: Any) -> None:
    hook, server = hook_server
    status, answer = call(hook.url, json.dumps({"name": "ada"}).encode(), BEARER)
    assert status == 202
    assert _wait(server, answer["run_id"]) == "succeeded"
    base = hook.url.removesuffix("/run")
    status, shown = call(f"{base}/runs/{answer['run_id']}", headers=BEARER)
    assert (status, shown["status"]) == (200, "succeeded")
    record = server.store.history.run(answer["run_id"])
    assert record.status == "succeeded"
    assert record.params["name"] == "ada"
    assert record.trigger["kind"] == "webhook"
    assert record.trigger["name"] == "webhook /run"


def test_an_hmac_signed_post_is_accepted_and_a_badly_signed_one_refused(hook_server: Any) -> None:
    hook, server = hook_server
    body = json.dumps({"name": "bob"}).encode()
    signed = {"X-Plait-Signature": signature("shared-secret", body), "X-Plait-Event-Id": "evt-7"}
    status, answer = call(hook.url, body, signed)
    assert status == 202
    assert _wait(server, answer["run_id"]) == "succeeded"
    assert server.store.history.run(answer["run_id"]).trigger["event_id"] == "evt-7"
    forged = {"X-Plait-Signature": signature("shared-secret", b'{"name": "eve"}')}
    assert call(hook.url, body, forged)[0] == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": TOKEN},  # no "Bearer "
        {"X-Plait-Signature": "sha256=00"},
    ],
)
def test_requests_without_valid_credentials_get_401(hook_server: Any, headers: dict) -> None:
    hook, server = hook_server
    status, answer = call(hook.url, b'{"name": "x"}', headers)
    assert status == 401
    assert "Bearer" in answer["error"]
    base = hook.url.removesuffix("/run")
    assert call(f"{base}/health", headers=headers)[0] == 401
    assert call(f"{base}/runs/abc", headers=headers)[0] == 401
    assert server.counts["events"] == 0


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object of params"),
        (b'{"name": "x", "tiems": 2}', 422, "invalid params"),
        (b'{"name": 3}', 422, "invalid params"),
        (b"{}", 422, "invalid params"),
    ],
)
def test_malformed_bodies_and_bad_params_are_refused_before_any_run(
    hook_server: Any, body: bytes, status: int, message: str
) -> None:
    hook, server = hook_server
    got, answer = call(hook.url, body, BEARER)
    assert (got, message in answer["error"]) == (status, True)
    if status == 422:
        assert answer["problems"], answer
    assert server.counts["events"] == 0


def test_the_problems_name_the_param_and_suggest_a_fix(hook_server: Any) -> None:
    hook, _ = hook_server
    _, answer = call(hook.url, b'{"name": "x", "tiems": 2}', BEARER)
    assert any("tiems" in p["message"] and "times" in p["message"] for p in answer["problems"])


def test_an_oversized_body_gets_413(hook_server: Any) -> None:
    hook, server = hook_server
    body = json.dumps({"name": "x" * 5000}).encode()
    assert call(hook.url, body, BEARER)[0] == 413
    assert server.counts["events"] == 0


def test_health_and_unknown_runs(hook_server: Any) -> None:
    hook, _ = hook_server
    base = hook.url.removesuffix("/run")
    status, health = call(f"{base}/health", headers=BEARER)
    assert (status, health["status"]) == (200, "ok")
    assert call(f"{base}/runs/nope", headers=BEARER)[0] == 404


def test_a_run_skipped_by_the_overlap_policy_gets_409(tmp_path: Path) -> None:
    gate = Gate()

    @step
    def slow(name: str) -> str:
        gate.enter()
        return name

    hook = Webhook(port=0, token=TOKEN)
    server = Server(Pipeline([slow], name="slow"), [hook], overlap="skip")
    with running(server):
        assert call(hook.url, b'{"name": "a"}', BEARER)[0] == 202
        gate.wait_for(1)
        status, answer = call(hook.url, b'{"name": "b"}', BEARER)
        gate.open()
    assert status == 409
    assert "overlap='skip'" in answer["error"]


def test_a_generated_token_is_announced_and_works(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("PLAIT_TOKEN", raising=False)
    monkeypatch.delenv("PLAIT_WEBHOOK_SECRET", raising=False)
    said: list[str] = []
    hook = Webhook(port=0)
    server = Server(_pipeline(), [hook], announce=said.append)
    with running(server):
        token = hook.token
        assert token
        assert len(token) >= 32
        assert any(token in line for line in said)
        headers = {"Authorization": f"Bearer {token}"}
        assert call(hook.url, b'{"name": "z"}', headers)[0] == 202


def test_the_token_comes_from_plait_token(monkeypatch: Any) -> None:
    monkeypatch.setenv("PLAIT_TOKEN", "from-the-environment")
    assert Webhook().token == "from-the-environment"


def test_listening_beyond_loopback_without_a_token_is_refused(monkeypatch: Any) -> None:
    monkeypatch.delenv("PLAIT_TOKEN", raising=False)
    monkeypatch.delenv("PLAIT_WEBHOOK_SECRET", raising=False)
    with pytest.raises(UsageError, match=r"refusing to serve a webhook on '0\.0\.0\.0'"):
        Webhook(host="0.0.0.0")
    assert Webhook(host="0.0.0.0", token="chosen").host == "0.0.0.0"


def test_a_busy_port_is_a_clear_error(hook_server: Any) -> None:
    hook, _ = hook_server
    other = Server(_pipeline(), [Webhook(port=hook.address[1], token=TOKEN)])
    import asyncio

    with pytest.raises(UsageError, match="cannot listen on"):
        asyncio.run(other.run())


def test_the_servers_own_params_count_when_a_request_is_validated(tmp_path: Path) -> None:
    hook = Webhook(port=0, token=TOKEN)
    server = Server(_pipeline(), [hook], params={"name": "from-server"})
    with running(server):
        status, answer = call(hook.url, b'{"times": 2}', BEARER)
        assert status == 202
        assert _wait(server, answer["run_id"]) == "succeeded"
