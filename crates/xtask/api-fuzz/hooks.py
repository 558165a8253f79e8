"""Schemathesis hooks of `cargo xtask api-fuzz` (loaded via SCHEMATHESIS_HOOKS).

Every request carries a credential: SCIM operations the account's SCIM
token, the rest the owner's API token. Operations that sign the caller out
or delete the caller run as a user used for that one call only (a member of
the demo's `large` account, signed in through the demo mailbox, a token from
POST /v1/tokens), so they never poison the rest of the run.
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
        token = session.fresh_user_token(BASE, fresh_tokens)
        fresh_tokens += 1
    else:
        token = TOKEN
    case.headers["Authorization"] = f"Bearer {token}"
    # The bearer decides; a generated session cookie must not shadow it.
    if case.cookies:
        case.cookies.pop("gh_session", None)
