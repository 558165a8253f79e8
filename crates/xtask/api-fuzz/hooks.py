"""Schemathesis hooks of `cargo xtask api-fuzz` (loaded via SCHEMATHESIS_HOOKS).

Every request carries a credential: SCIM operations the account's SCIM
token, the rest the owner's API token. Operations that sign the caller out
or delete the caller run with a fresh owner token each (a new sign-in
through the demo mailbox, then POST /v1/tokens), so they never poison the
rest of the run.
"""

import os

import schemathesis

import session

# (method, path template) that end the credential they are called with.
DESTRUCTIVE = {
    ("POST", "/v1/auth/sign-out"),
    ("DELETE", "/v1/me"),
    ("DELETE", "/v1/me/devices/{id}"),
}

BASE = os.environ["GH_FUZZ_BASE"]
OWNER = os.environ["GH_FUZZ_OWNER"]
TOKEN = os.environ["GH_FUZZ_TOKEN"]
SCIM = os.environ["GH_FUZZ_SCIM_TOKEN"]

fresh_tokens = 0


@schemathesis.hook
def before_call(context, case, kwargs):
    global fresh_tokens
    if case.headers is None:
        case.headers = {}
    path = case.operation.path
    if path.startswith("/scim/"):
        token = SCIM
    elif (case.method.upper(), path) in DESTRUCTIVE:
        token = session.owner_token(BASE, OWNER, label="api-fuzz fresh")
        fresh_tokens += 1
        # The device to sign out, when asked for "some device": the fresh
        # token's own is as good as any other and harms nothing else.
    else:
        token = TOKEN
    case.headers["Authorization"] = f"Bearer {token}"
    # The bearer decides; a generated session cookie must not shadow it.
    if case.cookies:
        case.cookies.pop("gh_session", None)
