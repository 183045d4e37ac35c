"""shared.webedge through a real aiohttp app on 127.0.0.1: JSON errors, client address, Origin, headers."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared import webedge
from shared.apperror import AppError


class TierError(AppError):
    CATALOGUE = {
        "invalid_request": (400, "入力に誤りがあります。", "Invalid request."),
        "not_found": (404, "見つかりません。", "Not found."),
        "body_too_large": (413, "大きすぎます。", "Too large."),
        "origin_mismatch": (403, "送信元が違います。", "Origin not allowed."),
        "internal_error": (500, "問題が起きました。", "Internal server error."),
    }


class OtherTierError(AppError):
    CATALOGUE = {"not_found": (404, "ない", "Not found.")}


CSP = "default-src 'self'"
client_ip_key = web.RequestKey("client_ip_key", str)


async def raise_app_error(request: web.Request) -> web.Response:
    raise TierError("not_found", field="名前\udc80")       # a lone surrogate echoed back in the detail


async def raise_http(request: web.Request) -> web.Response:
    raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2)


async def raise_server_error(request: web.Request) -> web.Response:
    raise web.HTTPServiceUnavailable()


async def raise_teapot(request: web.Request) -> web.Response:
    raise web.HTTPConflict()


async def crash(request: web.Request) -> web.Response:
    raise KeyError("bug")


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def other_tier(request: web.Request) -> web.Response:
    raise OtherTierError("not_found")


async def whoami(request: web.Request) -> web.Response:
    return web.json_response({"ip": webedge.client_ip(request, ("127.0.0.1",)),
                              "untrusted": webedge.client_ip(request, ()),
                              "origin_ok": webedge.origin_allowed(request, "https://chat.example.lg.jp")})


async def page(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def headers_hook(request: web.Request, response: web.StreamResponse) -> None:
    webedge.set_security_headers(request, response, csp=CSP, no_store=request.path.startswith("/api/"))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[webedge.error_middleware(TierError, {404: "not_found",
                                                                            413: "body_too_large"})])
    app.router.add_get("/api/app-error", raise_app_error)
    app.router.add_get("/api/http", raise_http)
    app.router.add_get("/api/server", raise_server_error)
    app.router.add_get("/api/client", raise_teapot)
    app.router.add_get("/api/crash", crash)
    app.router.add_get("/api/redirect", redirect)
    app.router.add_get("/api/other", other_tier)
    app.router.add_get("/api/whoami", whoami)
    app.router.add_get("/page", page)
    app.on_response_prepare.append(headers_hook)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def error_of(response: object) -> tuple[int, dict[str, object]]:
    status = response.status                             # type: ignore[attr-defined]
    body = json.loads(await response.text())             # type: ignore[attr-defined]
    return status, body["error"]


async def test_app_error_with_a_lone_surrogate_stays_valid_json(client: TestClient) -> None:  # type: ignore[type-arg]
    status, error = await error_of(await client.get("/api/app-error"))
    assert status == 404
    assert error == {"code": "not_found", "message": "見つかりません。", "message_en": "Not found.",
                     "detail": {"field": "名前\udc80"}}


async def test_japanese_is_not_escaped() -> None:
    assert webedge.dumps_json({"m": "見つかりません"}) == '{"m": "見つかりません"}'
    assert webedge.dumps_json({"m": "\udc80"}) == '{"m": "\\udc80"}'


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/http", 413, "body_too_large"),               # from the tier's table
    ("/api/nowhere", 404, "not_found"),                 # aiohttp's own 404
    ("/api/server", 503, "internal_error"),             # other 5xx
    ("/api/client", 409, "invalid_request"),            # other 4xx
])
async def test_aiohttp_errors_become_tier_codes(client: TestClient, path: str, status: int,  # type: ignore[type-arg]
                                                code: str) -> None:
    got_status, error = await error_of(await client.get(path))
    assert (got_status, error["code"]) == (status, code)


async def test_an_unexpected_exception_is_a_logged_500_without_a_trace(client: TestClient,  # type: ignore[type-arg]
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="shared.webedge"):
        response = await client.get("/api/crash")
        status, error = await error_of(response)
    assert (status, error["code"]) == (500, "internal_error")
    assert "KeyError" not in json.dumps(error) and "Traceback" not in await response.text()
    assert any(r.getMessage() == "unhandled error" and r.path == "/api/crash"  # type: ignore[attr-defined]
               for r in caplog.records)


async def test_another_tiers_error_is_not_this_tiers(client: TestClient) -> None:  # type: ignore[type-arg]
    status, error = await error_of(await client.get("/api/other"))
    assert (status, error["code"]) == (500, "internal_error")


async def test_redirects_pass_through(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/api/redirect", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/elsewhere"


async def test_client_ip_trusts_only_the_last_hop_of_a_trusted_proxy(client: TestClient) -> None:  # type: ignore[type-arg]
    plain = await (await client.get("/api/whoami")).json()
    assert plain["ip"] == plain["untrusted"] == "127.0.0.1"
    forwarded = await (await client.get("/api/whoami", headers={"X-Forwarded-For": "6.6.6.6, 10.1.2.3 "})).json()
    assert forwarded["ip"] == "10.1.2.3" and forwarded["untrusted"] == "127.0.0.1"
    junk = await (await client.get("/api/whoami", headers={"X-Forwarded-For": "10.1.2.3, not-an-ip"})).json()
    assert junk["ip"] == "127.0.0.1"


@pytest.mark.parametrize(("origin", "ok"), [
    (None, True), ("https://chat.example.lg.jp", True), ("https://evil.example", False), ("null", False),
    ("https://chat.example.lg.jp.evil.example", False),
])
async def test_origin(client: TestClient, origin: str | None, ok: bool) -> None:  # type: ignore[type-arg]
    headers = {} if origin is None else {"Origin": origin}
    assert (await (await client.get("/api/whoami", headers=headers)).json())["origin_ok"] is ok
    own = f"http://{client.host}:{client.port}"
    assert (await (await client.get("/api/whoami", headers={"Origin": own})).json())["origin_ok"] is True


async def test_security_headers(client: TestClient) -> None:  # type: ignore[type-arg]
    api = await client.get("/api/whoami")
    page = await client.get("/page")
    for response in (api, page):
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in response.headers         # plain http
    assert api.headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in page.headers
