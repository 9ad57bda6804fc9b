"""JWT bearer tokens from an identity provider, verified against its JWKS (used by `server.auth`).

Beside the development token table, a deployment names its identity provider in settings (`config.settings`):

- `JWT_JWKS_URL`: where the provider publishes its public keys (a JSON Web Key Set, fetched with PyJWT's
  `PyJWKClient` and cached; a token whose `kid` is unknown makes it fetch the set again, so key rotation works);
- `JWT_ISSUER` and `JWT_AUDIENCE`: the `iss` and `aud` every token must carry (both required);
- `JWT_ATHLETE_CLAIM` (default `sub`): the claim holding the athlete id, validated like every athlete id;
- `JWT_ALGORITHMS` (default `["RS256"]`): asymmetric algorithms only, so a token cannot be "signed" with a
  public key used as an HMAC secret, nor with `none`.

A token is accepted when its signature verifies with the provider's key of its `kid`, it carries `exp`, `iss`
and `aud`, it has not expired (with `JWT_LEEWAY_S` of clock skew), its issuer and audience are the configured
ones, and its athlete claim is a valid athlete id. Anything else (expired, another audience or issuer, a bad
signature, a missing or invalid claim, not a JWT at all) is not a token of this provider: the server answers 401.
When the provider's key set cannot be fetched the answer is 503 (the token may be good; the client retries).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import jwt
from langgraph_sdk import Auth

from config.settings import Settings
from memory.athlete_store import validate_athlete_id
from memory.errors import InvalidAthleteIdError

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
"""The algorithms a JWKS-verified token may use (public-key signatures only)."""

JWKS_CACHE_S = 300
"""How long the fetched key set is reused before it is fetched again, seconds."""

JWKS_TIMEOUT_S = 10
"""Timeout of one fetch of the key set, seconds."""


class JwtVerifier:
    """Verifies JWTs signed by an identity provider's keys and maps them to athlete ids."""

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        athlete_claim: str = "sub",
        algorithms: Sequence[str] = ("RS256",),
        leeway_s: float = 30.0,
    ) -> None:
        """Check the configuration; the key set is fetched on first use.

        Args:
            jwks_url: the provider's JWKS URL (https in production; any URL `urllib` opens).
            issuer: the required `iss` claim.
            audience: the required `aud` claim (one of the token's audiences).
            athlete_claim: the claim holding the athlete id.
            algorithms: the accepted signature algorithms (a subset of `ASYMMETRIC_ALGORITHMS`).
            leeway_s: clock skew tolerated on the time claims, seconds.

        Raises:
            ValueError: an empty URL, issuer, audience or claim, no algorithm, or an algorithm that is not a
                public-key one.
        """
        if not jwks_url or not issuer or not audience or not athlete_claim:
            raise ValueError("JWT verification needs JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE and JWT_ATHLETE_CLAIM")
        bad = [name for name in algorithms if name not in ASYMMETRIC_ALGORITHMS]
        if not algorithms or bad:
            raise ValueError(f"JWT_ALGORITHMS must be public-key algorithms of {sorted(ASYMMETRIC_ALGORITHMS)}")
        self.issuer = issuer
        self.audience = audience
        self.athlete_claim = athlete_claim
        self.algorithms = list(algorithms)
        self.leeway_s = leeway_s
        self._jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=JWKS_CACHE_S, timeout=JWKS_TIMEOUT_S)

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtVerifier | None:
        """The verifier of the configured provider, or None when `JWT_JWKS_URL` is not set.

        Raises:
            ValueError: the provider's settings are incomplete or unsafe (see `__init__`).
        """
        if not settings.jwt_jwks_url:
            return None
        return cls(
            settings.jwt_jwks_url,
            issuer=settings.jwt_issuer or "",
            audience=settings.jwt_audience or "",
            athlete_claim=settings.jwt_athlete_claim,
            algorithms=settings.jwt_algorithms,
            leeway_s=settings.jwt_leeway_s,
        )

    def claims(self, token: str) -> dict[str, Any] | None:
        """The verified claims of `token`, or None when it is not a valid token of this provider (blocking I/O).

        Raises:
            Auth.exceptions.HTTPException: 503 when the provider's key set cannot be fetched.
        """
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("cannot fetch the identity provider's keys: %s", exc)
            raise Auth.exceptions.HTTPException(
                status_code=503, detail="the identity provider's keys cannot be fetched; retry later"
            ) from None
        except jwt.PyJWTError:  # not a JWT, or no key of its kid
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        return claims

    def athlete_for(self, token: str) -> str | None:
        """The athlete id of a valid token, or None (blocking I/O: the key set may be fetched).

        Raises:
            Auth.exceptions.HTTPException: 503 when the provider's key set cannot be fetched.
        """
        claims = self.claims(token)
        if claims is None:
            return None
        athlete_id = claims.get(self.athlete_claim)
        if not isinstance(athlete_id, str):
            return None
        try:
            return validate_athlete_id(athlete_id)
        except InvalidAthleteIdError:
            return None

    async def athlete_for_async(self, token: str) -> str | None:
        """`athlete_for` in a worker thread (the key set is fetched with blocking I/O)."""
        return await asyncio.to_thread(self.athlete_for, token)


def looks_like_jwt(token: str) -> bool:
    """Whether `token` has the shape of a compact JWS (three dot-separated parts)."""
    return token.count(".") == 2
