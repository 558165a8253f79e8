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
            bin_, "serve", "--demo", "--db", db, "--module", module,
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
            st, "run", f"{base}/openapi.json",
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
