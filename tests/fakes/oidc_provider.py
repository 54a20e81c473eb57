"""A local OpenID provider over real HTTP on 127.0.0.1, for step-up approvals.

- `/.well-known/openid-configuration`: discovery (issuer, endpoints, jwks_uri);
- `/authorize`: no login form: it logs in at once as `self.login` (the person, `amr` and how
  long ago, chosen by the test) and redirects back with `code` and `state`; it records the
  query the bot sent (PKCE challenge, nonce, prompt, max_age, scope);
- `/token`: checks the client secret (HTTP Basic), the code (once), the redirect URI and the
  PKCE verifier against the challenge, and answers an RS256 ID token signed with the current
  key (or, when the test says so, with a rogue key or wrong claims);
- `/jwks`: the public half of the current key; `rotate()` replaces the key (new `kid`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.fakes.local_server import LocalServer, Reply, Request, ServedFake

CLIENT_ID = "prod-access-test"
CLIENT_SECRET = "oidc-client-secret-0123456789"


@dataclass(frozen=True)
class Login:
    """Who the provider logs in at /authorize, and how."""

    sub: str
    email: str | None
    amr: tuple[str, ...] = ("pwd", "mfa")
    seconds_ago: int = 5  # auth_time = now - this
    email_verified: bool = True


@dataclass
class Tamper:
    """What the next ID tokens get wrong, for the refusal tests."""

    rogue_key: bool = False  # signed by a key not in the JWKS, under the current kid
    claims: dict[str, Any] = field(default_factory=dict)  # overrides (iss, aud, nonce, exp …)


class FakeOidcProvider(ServedFake):
    def __init__(self) -> None:
        self._server = LocalServer(self._handle)
        self._lock = threading.Lock()
        self._key = self._new_key()
        self.login = Login(sub="sub-lead1", email="lead1@example.com")
        self.tamper = Tamper()
        self._codes: dict[str, dict[str, Any]] = {}
        self.authorize_queries: list[dict[str, str]] = []
        self.jwks_fetches = 0

    @property
    def issuer(self) -> str:
        return self.base_url

    @staticmethod
    def _new_key() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig"})

    def rotate(self) -> str:
        """A new signing key with a new kid; the JWKS serves only it from now on."""
        with self._lock:
            self._key = self._new_key()
            return str(self._key.kid)

    def log_in_as(self, **login: Any) -> None:
        self.login = replace(self.login, **login)

    def _handle(self, request: Request) -> Reply:
        if request.path == "/.well-known/openid-configuration":
            return Reply(
                body={
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )
        if request.path == "/jwks":
            with self._lock:
                self.jwks_fetches += 1
                return Reply(body={"keys": [self._key.as_dict(private=False)]})
        if request.path == "/authorize":
            return self._authorize({k: v[0] for k, v in parse_qs(request.query).items()})
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        return Reply(404, {"error": "not_found"})

    def _authorize(self, query: dict[str, str]) -> Reply:
        self.authorize_queries.append(query)
        if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
            return Reply(400, {"error": "invalid_request"})
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {"query": query, "login": self.login, "at": int(time.time())}
        back = urlencode({"code": code, "state": query.get("state", "")})
        return Reply(302, None, {"Location": f"{query['redirect_uri']}?{back}"})

    def _token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return Reply(401, {"error": "invalid_client"})
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return Reply(400, {"error": "invalid_grant"})
        query = grant["query"]
        challenge = (
            base64.urlsafe_b64encode(
                hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            )
            .rstrip(b"=")
            .decode()
        )
        if query.get("code_challenge_method") != "S256" or challenge != query.get("code_challenge"):
            return Reply(400, {"error": "invalid_grant", "error_description": "PKCE"})
        if form.get("redirect_uri") != query.get("redirect_uri"):
            return Reply(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
        login: Login = grant["login"]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": login.sub,
            "iat": now,
            "exp": now + 300,
            "auth_time": now - login.seconds_ago,
            "nonce": query.get("nonce"),
            "amr": list(login.amr),
        }
        if login.email:
            claims.update(email=login.email, email_verified=login.email_verified)
        claims.update(self.tamper.claims)
        with self._lock:
            key = self._key
        if self.tamper.rogue_key:
            key = RSAKey.generate_key(2048, parameters={"kid": key.kid})
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        return Reply(
            body={
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )
