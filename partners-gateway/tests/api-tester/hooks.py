"""Signs every request schemathesis sends, as a partner or an operator would.

Partner routes (/v1/...) are signed with HMAC-SHA256 over the canonical request (docs/api.md,
"Signing"); operator routes (/admin/v1/...) carry the operator's bearer token. Credentials come
from the demo credentials file the gateway wrote (API_TESTER_CREDENTIALS).
"""

import hashlib
import hmac
import os
import secrets
import time

import requests
import schemathesis


def _credentials():
    values = {}
    with open(os.environ["API_TESTER_CREDENTIALS"], encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value
    return values


CREDENTIALS = _credentials()


class _Signed(requests.auth.AuthBase):
    """Signs the prepared request: the bytes and the path exactly as they will be sent."""

    def __call__(self, r):
        path, _, query = r.path_url.partition("?")
        if path.startswith("/admin/"):
            r.headers["Authorization"] = "Bearer " + CREDENTIALS["OPERATOR_TOKEN"]
            return r
        if not path.startswith("/v1/"):
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        pairs = sorted(p for p in query.split("&") if p)
        canonical = "\n".join(
            [
                r.method.upper(),
                path,
                "&".join(pairs),
                timestamp,
                nonce,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        secret = CREDENTIALS["SKYWAYS_SECRET"].encode()
        r.headers["x-key-id"] = CREDENTIALS["SKYWAYS_KEY_ID"]
        r.headers["x-timestamp"] = timestamp
        r.headers["x-nonce"] = nonce
        r.headers["x-signature"] = hmac.new(
            secret, canonical.encode(), hashlib.sha256
        ).hexdigest()
        return r


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # Sign only the cases that carry the security header: those that leave it out test that
    # the API refuses them, and must go out unsigned.
    names = {name.lower() for name in (case.headers or {})}
    if "authorization" in names or "x-key-id" in names:
        kwargs["auth"] = _Signed()
