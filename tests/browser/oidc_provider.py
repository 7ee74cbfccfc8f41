"""A real OpenID Connect provider for tests, built with Authlib's server side.

A small Flask app served on a real port (werkzeug, in a thread): discovery at
``/.well-known/openid-configuration``, its signing key at ``/jwks`` (RSA,
made when the provider starts), a sign-in page at ``/authorize`` (email and
password of the provider's own people), and ``/token`` (authorization code
grant, client secret, PKCE S256 required) that returns an RS256-signed ID
token with the person's email and ``email_verified``. Everything is kept in
memory; nothing here is refflow code.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

PAGE = """<!doctype html><html lang="en"><head><title>Test provider sign-in</title></head>
<body><h1>Test identity provider</h1>{error}
<form method="post"><label>Email <input name="email" type="email"></label>
<label>Password <input name="password" type="password"></label>
<button type="submit">Continue</button></form></body></html>"""


@dataclass
class Person:
    email: str
    password: str
    email_verified: bool = True
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        allowed = {"openid", "email", "profile"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    person: Person
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class Provider:
    """The provider, its people and its one client."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4),
                                                         "use": "sig", "alg": "RS256"})
        self.people: dict[str, Person] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.issuer = ""
        self.app = self._make_app()
        self._server = None
        self._thread = None

    # -- setup ---------------------------------------------------------------
    def add_person(self, email: str, password: str, *, email_verified: bool = True) -> Person:
        self.people[email] = person = Person(email, password, email_verified)
        return person

    def add_client(self, redirect_uri: str) -> Client:
        client = Client(secrets.token_hex(8), secrets.token_urlsafe(24), [redirect_uri])
        self.clients[client.client_id] = client
        return client

    def start(self) -> str:
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.issuer

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    # -- the Flask app -------------------------------------------------------
    def _make_app(self) -> Flask:
        provider = self
        app = Flask("test_oidc_provider")

        class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                provider.codes[code] = Code(
                    code, req.client.client_id, req.payload.redirect_uri, req.scope,
                    req.user, req.payload.data.get("nonce"),
                    req.payload.data.get("code_challenge"),
                    req.payload.data.get("code_challenge_method"))

            def query_authorization_code(self, code, client):
                found = provider.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code):
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.person

        class OpenIDConnect(OpenIDCode):
            def exists_nonce(self, nonce, req):
                return any(c.nonce == nonce for c in provider.codes.values())

            def resolve_client_private_key(self, client):
                return provider.key

            def get_client_claims(self, client):
                return {"iss": provider.issuer, "aud": [client.client_id]}

            def generate_user_info(self, user, scope):
                return UserInfo(sub=user.sub, email=user.email,
                                email_verified=user.email_verified)

        server = AuthorizationServer(app, query_client=self.clients.get,
                                     save_token=lambda token, req: None)
        server.register_grant(AuthorizationCodeGrant,
                              [OpenIDConnect(require_nonce=True), CodeChallenge(required=True)])

        @app.get("/.well-known/openid-configuration")
        def configuration():
            return jsonify({
                "issuer": provider.issuer,
                "authorization_endpoint": f"{provider.issuer}/authorize",
                "token_endpoint": f"{provider.issuer}/token",
                "jwks_uri": f"{provider.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                          "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
            })

        @app.get("/jwks")
        def jwks():
            return jsonify({"keys": [provider.key.as_dict(private=False)]})

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            if request.method == "GET":
                server.get_consent_grant(end_user=None)  # a bad client or URI: an error now
                return PAGE.format(error="")
            person = provider.people.get(request.form.get("email", ""))
            if person is None or person.password != request.form.get("password"):
                return PAGE.format(error="<p role=alert>Wrong email or password.</p>"), 401
            grant = server.get_consent_grant(end_user=person)
            return server.create_authorization_response(grant=grant, grant_user=person)

        @app.post("/token")
        def token():
            return server.create_token_response()

        return app
