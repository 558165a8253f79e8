"""Signing in to a demo host over its own API: the sign-in link from the
demo mailbox, redeemed in the same client (its binding cookie), then an API
token minted from that fresh browser session (POST /v1/tokens)."""

import re

import requests


def browser(base, email):
    """A signed-in browser client: (requests session, csrf value)."""
    s = requests.Session()
    r = s.post(f"{base}/v1/auth/sign-in", json={"email": email}, timeout=30)
    r.raise_for_status()
    r = s.get(f"{base}/v1/demo/mailbox", params={"to": email}, timeout=30)
    r.raise_for_status()
    link = None
    for mail in r.json()["mails"]:
        m = re.search(r"ghl_[0-9a-f]+", mail["body"])
        if m:
            link = m.group(0)
            break
    if link is None:
        raise RuntimeError(f"no sign-in link to {email} in the demo mailbox")
    r = s.post(f"{base}/v1/auth/redeem", json={"token": link}, timeout=30)
    r.raise_for_status()
    return s, r.json()["csrf"]


def owner_token(base, email, label="api-fuzz"):
    """A write API token for every account `email` sees, minted over the API."""
    s, csrf = browser(base, email)
    r = s.get(f"{base}/v1/accounts", timeout=30)
    r.raise_for_status()
    accounts = [a["id"] for a in r.json()["accounts"]]
    r = s.post(
        f"{base}/v1/tokens",
        json={"label": label, "accounts": accounts, "access": "write", "lifetime_days": 1},
        headers={"x-csrf-token": csrf},
        timeout=30,
    )
    if r.status_code != 201:
        raise RuntimeError(f"POST /v1/tokens answered {r.status_code}: {r.text}")
    return r.json()["token"]
