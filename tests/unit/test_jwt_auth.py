"""JWT bearer tokens from an identity provider (`server.jwt_auth`, through `server.auth`'s default resolver).

The identity provider is played by a local RSA key pair whose public key is served as a JWKS by an HTTP server
on loopback; tokens are signed with PyJWT. The resolver is the server's own, configured from settings.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from langgraph_sdk import Auth

from config.settings import get_settings
from server import auth
from server.jwt_auth import JwtVerifier

ISSUER = "https://id.example.test/"
AUDIENCE = "endurance-coach"
KID = "test-key-1"
DEV_TOKEN = "development-token-0001"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROVIDER_KEY = _key()
OTHER_KEY = _key()


class _Jwks(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(PROVIDER_KEY.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def provider(jwks_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings naming the local identity provider, plus one development token; the default resolver."""
    monkeypatch.setenv("JWT_JWKS_URL", jwks_url)
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("JWT_ATHLETE_CLAIM", "athlete_id")
    monkeypatch.setenv("COACH_AUTH_TOKENS", json.dumps({DEV_TOKEN: "dev-athlete"}))
    monkeypatch.delenv("COACH_AUTH_TOKENS_FILE", raising=False)
    get_settings.cache_clear()
    auth.set_token_resolver(None)
    yield
    auth.set_token_resolver(None)
    get_settings.cache_clear()


def token(key: rsa.RSAPrivateKey = PROVIDER_KEY, kid: str = KID, drop: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "auth0|12345",
        "athlete_id": "athlete-jwt",
        "iat": now,
        "exp": now + 600,
        **claims,
    }
    if drop:
        payload.pop(drop)
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_a_good_token_maps_to_the_athlete_of_the_configured_claim(provider: None) -> None:
    user = await auth.authenticate(f"Bearer {token()}")
    assert user["identity"] == "athlete-jwt"


async def test_development_tokens_still_work_beside_the_provider(provider: None) -> None:
    user = await auth.authenticate(f"Bearer {DEV_TOKEN}")
    assert user["identity"] == "dev-athlete"


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: token(exp=int(time.time()) - 120, iat=int(time.time()) - 900), id="expired"),
        pytest.param(lambda: token(aud="another-app"), id="wrong-audience"),
        pytest.param(lambda: token(iss="https://evil.example.test/"), id="wrong-issuer"),
        pytest.param(lambda: token(key=OTHER_KEY), id="bad-signature"),
        pytest.param(lambda: token(drop="athlete_id"), id="missing-claim"),
        pytest.param(lambda: token(athlete_id="../etc"), id="invalid-athlete-id"),
        pytest.param(lambda: token(athlete_id=42), id="claim-not-a-string"),
        pytest.param(lambda: token(drop="exp"), id="no-expiry"),
        pytest.param(lambda: token(kid="unknown-kid"), id="unknown-key"),
        pytest.param(lambda: token()[:-4] + "AAAA", id="tampered"),
        pytest.param(lambda: "not.a.jwt", id="not-a-jwt"),
        pytest.param(
            lambda: jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "athlete_id": "x", "exp": 2**40}, None, "none"),
            id="alg-none",
        ),
    ],
)
async def test_invalid_tokens_are_401(provider: None, bad: Any) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as exc:
        await auth.authenticate(f"Bearer {bad()}")
    assert exc.value.status_code == 401


async def test_an_unreachable_provider_is_503_not_a_silent_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_JWKS_URL", "http://127.0.0.1:9/jwks.json")  # discard port: refused
    monkeypatch.setenv("JWT_ISSUER", ISSUER)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    get_settings.cache_clear()
    auth.set_token_resolver(None)
    try:
        with pytest.raises(Auth.exceptions.HTTPException) as exc:
            await auth.authenticate(f"Bearer {token()}")
        assert exc.value.status_code == 503
    finally:
        auth.set_token_resolver(None)
        get_settings.cache_clear()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "", "audience": AUDIENCE},
        {"issuer": ISSUER, "audience": ""},
        {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["HS256"]},
        {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["none"]},
        {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": []},
    ],
)
def test_incomplete_or_unsafe_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        JwtVerifier("http://127.0.0.1:9/jwks.json", **kwargs)
