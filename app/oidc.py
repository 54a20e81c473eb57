"""The OpenID Connect client of step-up approvals: discovery, the authorization URL (code flow
with PKCE S256, state, nonce, `prompt=login`, `max_age`), the code exchange, and the ID
token's verification. It knows neither Slack nor the database: app/operations/step_up.py
decides what a verified login means.

Rules it relies on:
- Nothing of OAuth or JOSE is written here by hand: authlib's OAuth2Session builds the URL
  and exchanges the code (the client secret goes in HTTP Basic), joserfc checks the
  signature and the registered claims.
- An ID token is believed only when signed with an asymmetric algorithm of ALGORITHMS by a
  key of the issuer's JWKS (never HS*, never `none`: a client secret must not sign logins),
  issued by the configured issuer for this client, not expired, with the nonce this login
  was started with, an `auth_time` no older than `max_age`, and one of the `amr` values
  asked for (an empty list accepts any). Each refusal says which (`StepUpRefused.reason`).
- The discovery document and the JWKS are cached for CACHE_SECONDS; a token signed with a
  key id the cached JWKS does not have makes one refetch (the provider rotated its key).
- The client secret, the code and the tokens are never logged or put in an error message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

if TYPE_CHECKING:
    from app.config import Settings

ALGORITHMS = ("RS256", "ES256", "PS256", "RS384", "ES384", "RS512", "ES512", "EdDSA")
SCOPE = "openid email"
#: Where the identity provider sends the browser back, under PUBLIC_URL.
CALLBACK_PATH = "/step-up/callback"
CACHE_SECONDS = 300.0
HTTP_TIMEOUT = 10.0
#: Clocks differ a little between the provider and us (exp, auth_time).
LEEWAY_SECONDS = 30


class OidcUnavailable(Exception):
    """The identity provider could not be reached or answered something unusable."""


class StepUpRefused(Exception):
    """A login that does not prove what step-up needs; `reason` is the audit's word for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedLogin:
    """What a verified ID token says about the person who logged in."""

    issuer: str
    subject: str
    email: str | None  # only a verified email (email_verified not false)
    amr: list[str]
    auth_time: int


@dataclass
class _Cached:
    value: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    def fresh(self) -> bool:
        return time.monotonic() - self.at < CACHE_SECONDS


def provider_name(issuer: str) -> str:
    """What people call the identity provider, for "Confirm with …": known hosts by name,
    anything else by its host."""
    parts = urlsplit(issuer)
    host = parts.hostname or issuer
    if host.endswith((".okta.com", ".oktapreview.com")):
        return "Okta"
    if host in ("login.microsoftonline.com", "sts.windows.net"):
        return "Entra ID"
    if host == "accounts.google.com":
        return "Google"
    if "/realms/" in parts.path:
        return "Keycloak"
    return host


class OidcClient:
    """One OpenID provider, one client registration, one redirect URI."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id, self._secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self._now = now
        self._lock = threading.Lock()
        self._discovery: _Cached | None = None
        self._jwks: _Cached | None = None

    @property
    def name(self) -> str:
        return provider_name(self.issuer)

    # --- documents -------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """The provider's metadata (cached); OidcUnavailable when it cannot be had."""
        with self._lock:
            if self._discovery is not None and self._discovery.fresh():
                return self._discovery.value
        url = f"{self.issuer}/.well-known/openid-configuration"
        document = _get_json(url)
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(key), str):
                raise OidcUnavailable(f"{url} has no {key}")
        if document["issuer"].rstrip("/") != self.issuer:
            raise OidcUnavailable(
                f"{url} names issuer {document['issuer']}, not OIDC_ISSUER {self.issuer}"
            )
        with self._lock:
            self._discovery = _Cached(document)
        return document

    def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys (cached unless `refresh`)."""
        with self._lock:
            cached = self._jwks
        if refresh or cached is None or not cached.fresh():
            cached = _Cached(_get_json(self.discovery()["jwks_uri"]))
            with self._lock:
                self._jwks = cached
        try:
            return KeySet.import_key_set(cached.value)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcUnavailable(f"the JWKS is not usable: {type(exc).__name__}") from None

    def probe(self) -> str:
        """For `prod-access check`: fetch the discovery document and the JWKS."""
        document = self.discovery()
        count = len(list(self.keys(refresh=True)))
        return f"{self.issuer}: discovery and JWKS ({count} key(s)) fetched; {document['jwks_uri']}"

    # --- the flow --------------------------------------------------------------------

    def _session(self) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self._secret,
            scope=SCOPE,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            default_timeout=HTTP_TIMEOUT,
        )

    def authorization_url(self, state: str, nonce: str, code_verifier: str, max_age: int) -> str:
        """Where to send the browser: a fresh login (`prompt=login`) no older than `max_age`."""
        endpoint = self.discovery()["authorization_endpoint"]
        with self._session() as session:
            url, _ = session.create_authorization_url(
                endpoint,
                state=state,
                code_verifier=code_verifier,
                nonce=nonce,
                prompt="login",
                max_age=str(max_age),
            )
        return str(url)

    def exchange(self, code: str, code_verifier: str) -> str:
        """Trade the code for tokens; the ID token (as text). OidcUnavailable on failure
        (its message names the error the provider gave, never the code)."""
        endpoint = self.discovery()["token_endpoint"]
        try:
            with self._session() as session:
                token = session.fetch_token(
                    endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except Exception as exc:  # authlib's OAuthError, requests' errors, a bad JSON body
            raise OidcUnavailable(
                f"the token endpoint refused the code: {getattr(exc, 'error', type(exc).__name__)}"
            ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcUnavailable("the token endpoint answered without an id_token")
        return id_token

    def verify(self, id_token: str, nonce: str, max_age: int, amr: Sequence[str]) -> VerifiedLogin:
        """Check the ID token (see the module's rules); StepUpRefused says why not."""
        try:
            token = jwt.decode(id_token, self.keys(), algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            try:  # a key id we do not know: the provider may have rotated its key
                token = jwt.decode(id_token, self.keys(refresh=True), algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                raise StepUpRefused(
                    "bad_signature", "The login was signed with a key the provider does not have."
                ) from None
            except (BadSignatureError, JoseError, ValueError):
                raise _bad_signature() from None
        except (BadSignatureError, JoseError, ValueError):
            raise _bad_signature() from None
        claims = token.claims
        now = int(self._now())
        registry = jwt.JWTClaimsRegistry(
            now=now,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            sub={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise StepUpRefused("invalid_token", "The login's token has expired.") from None
        except ClaimError as exc:
            name = getattr(exc, "claim", "")
            reason = "nonce_mismatch" if name == "nonce" else "invalid_token"
            raise StepUpRefused(
                reason, f"The login's token has a wrong {name or 'claim'}."
            ) from None
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            raise StepUpRefused(
                "stale_login", "The identity provider did not say when you logged in."
            )
        if now - int(auth_time) > max_age + LEEWAY_SECONDS:
            raise StepUpRefused(
                "stale_login",
                f"Your login is older than {max_age // 60 or 1} minute(s); log in again.",
            )
        methods = claims.get("amr") or []
        methods = [str(m) for m in methods] if isinstance(methods, list) else []
        if amr and not set(methods) & set(amr):
            raise StepUpRefused(
                "no_mfa",
                f"The login did not use MFA (one of {', '.join(amr)}); "
                f"it says {', '.join(methods) or 'nothing'}.",
            )
        email = claims.get("email")
        verified = claims.get("email_verified", True) not in (False, "false")
        return VerifiedLogin(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=str(email) if isinstance(email, str) and verified else None,
            amr=methods,
            auth_time=int(auth_time),
        )


def _bad_signature() -> StepUpRefused:
    return StepUpRefused("bad_signature", "The login's signature does not check out.")


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except requests.RequestException as exc:
        raise OidcUnavailable(f"{url}: {type(exc).__name__}") from None
    except ValueError:
        raise OidcUnavailable(f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise OidcUnavailable(f"{url}: not a JSON object")
    return document


def oidc_from_settings(
    settings: Settings, now: Callable[[], float] = time.time
) -> OidcClient | None:
    """The client the settings describe, or None while any of them is missing."""
    if settings.missing_step_up():
        return None
    assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
    return OidcClient(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret.get_secret_value(),
        f"{settings.public_url}{CALLBACK_PATH}",
        now,
    )
