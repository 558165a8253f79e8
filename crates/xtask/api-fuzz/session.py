"""Signing in to a demo host over its own API: the sign-in link from the
demo mailbox, redeemed in the same client (its binding cookie), then an API
token minted from that fresh browser session (POST /v1/tokens)."""

import re
import time

import requests


# Links already redeemed: the mailer sends after the answer, so the newest
# link in the mailbox may still be the previous one for a moment.
_used = set()


def browser(base, email):
    """A signed-in browser client: (requests session, csrf value)."""
    s = requests.Session()
    r = s.post(f"{base}/v1/auth/sign-in", json={"email": email}, timeout=30)
    r.raise_for_status()
    link = None
    for _ in range(400):
        r = s.get(f"{base}/v1/demo/mailbox", params={"to": email}, timeout=30)
        r.raise_for_status()
        for mail in r.json()["mails"]:
            m = re.search(r"ghl_[0-9a-f]+", mail["body"])
            if m:
                if m.group(0) not in _used:
                    link = m.group(0)
                break
        if link:
            break
        time.sleep(0.025)
    if link is None:
        raise RuntimeError(f"no new sign-in link to {email} in the demo mailbox after 10 s")
    _used.add(link)
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


# How many members `serve --demo --demo-members N` gives the `large` account.
DEMO_MEMBERS = 1000


def fresh_user_token(base, n):
    """A write API token of a user used for one call only: the n-th member
    of the demo's `large` account (`serve --demo-members`), signed in
    through the demo mailbox. Calls that sign their caller out or delete
    them use one, so they end nobody the rest of the run needs."""
    if n + 3 > DEMO_MEMBERS:
        raise RuntimeError(f"more than {DEMO_MEMBERS} calls that end their caller: raise DEMO_MEMBERS")
    # m0001 and m0002 are its owners: the rest are one-call users.
    return owner_token(base, f"m{n + 3:04}@large.acme.test", label="api-fuzz fresh")
