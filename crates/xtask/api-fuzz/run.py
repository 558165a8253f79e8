"""`cargo xtask api-fuzz`: schemathesis against a live demo host.

Starts `gatehouse serve --demo` on a fresh SQLite store with the rate limits
off, signs the owner in through the demo mailbox, mints an API token over
the API and a SCIM token with the CLI, then runs schemathesis on the host's
own /openapi.json with the checks for server errors, status codes, content
types and response schemas. Exits non-zero on any failure.

usage: run.py BIN MODULE ROOT WORKDIR EXAMPLES [SEED]
"""

import json
import os
import socket
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import session  # noqa: E402

OWNER = "olivia@acme.test"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(base, token, work):
    """A schemathesis.toml whose dictionaries hold the demo's real account
    and user ids (as the owner sees them): generated path parameters take
    one of them half the time, so operations reach their decisions rather
    than stopping at 404 or the token's scope."""
    auth = {"Authorization": f"Bearer {token}"}
    accounts = [a["id"] for a in requests.get(f"{base}/v1/accounts", headers=auth, timeout=30).json()["accounts"]]
    users = set()
    for a in accounts:
        r = requests.get(f"{base}/v1/accounts/{a}/members", headers=auth, timeout=30)
        if r.status_code == 200:
            users.update(m["user"] for m in r.json()["members"])
    q = lambda values: "[" + ", ".join(json.dumps(v) for v in sorted(values)) + "]"
    path = os.path.join(work, "schemathesis.toml")
    with open(path, "w") as f:
        f.write(f"""[dictionaries.accounts]
values = {q(accounts)}

[dictionaries.users]
values = {q(users)}

[parameters]
"path.account" = {{ dictionary = "accounts", probability = 0.5 }}
"path.user" = {{ dictionary = "users", probability = 0.5 }}
"body.user" = {{ dictionary = "users", probability = 0.5 }}
""")
    return path


def main():
    bin_, module, root, work, examples = sys.argv[1:6]
    seed = sys.argv[6] if len(sys.argv) > 6 else "1"
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "fuzz.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "host.log"), "w")
    host = subprocess.Popen(
        [
            bin_, "serve", "--demo", "--demo-members", str(session.DEMO_MEMBERS),
            "--db", db, "--module", module,
            "--listen", f"127.0.0.1:{port}", "--rate-limits", "off",
            "--policies", os.path.join(root, "policies"),
            "--tables", os.path.join(root, "tests/vectors"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if host.poll() is not None:
                sys.exit(f"the host exited ({host.returncode}): see {log.name}")
            time.sleep(0.1)
        else:
            sys.exit(f"the host did not answer /health within 60 s: see {log.name}")
        token = session.owner_token(base, OWNER)
        config = write_config(base, token, work)
        scim = subprocess.run(
            [bin_, "scim-token", "--account", "agency", "--db", db],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        env = dict(os.environ)
        here = os.path.dirname(os.path.abspath(__file__))
        env.update({
            "PYTHONPATH": here + os.pathsep + env.get("PYTHONPATH", ""),
            "SCHEMATHESIS_HOOKS": "hooks",
            "GH_FUZZ_BASE": base,
            "GH_FUZZ_OWNER": OWNER,
            "GH_FUZZ_TOKEN": token,
            "GH_FUZZ_SCIM_TOKEN": scim,
        })
        report = os.path.join(work, "report")
        st = os.path.join(os.path.dirname(sys.executable), "st")
        cmd = [
            st, "--config-file", config, "run", f"{base}/openapi.json",
            "--checks", CHECKS,
            "--max-examples", examples,
            "--seed", seed,
            "--workers", "1",
            "--phases", "examples,coverage,fuzzing",
            "--suppress-health-check", "all",
            "--request-timeout", "60",
            "--report", "junit",
            "--report-dir", report,
            "--output-truncate", "false",
        ]
        print("$", " ".join(cmd), flush=True)
        code = subprocess.run(cmd, env=env, cwd=work).returncode
        sys.exit(code)
    finally:
        host.terminate()
        try:
            host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.kill()


if __name__ == "__main__":
    main()
