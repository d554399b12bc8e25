"""Schemathesis hooks for `make fuzz`: how each generated request is authenticated.

Loaded by schemathesis through SCHEMATHESIS_HOOKS, set by tests/fuzz/run.mjs, which also sets:

- FUZZ_BASE_URL: the worker under test.
- FUZZ_AUTH=bearer: every request carries FUZZ_BEARER (a JWT or an API key) that run.mjs
  made for this pass, fetched once.
- FUZZ_AUTH=throwaway: every request is made as a brand-new user, registered and logged in
  for that one request. The destructive operations (logout, logout-all, delete a session,
  change or reset the password, delete the account) run this way, so whatever a case does
  to its account can neither lock the other passes out nor affect the next case.
"""

import itertools
import os
import threading

import requests

import schemathesis

BASE_URL = os.environ["FUZZ_BASE_URL"].rstrip("/")
MODE = os.environ.get("FUZZ_AUTH", "bearer")
PASSWORD = "fuzz throwaway passphrase 7731"

_counter = itertools.count(1)
_lock = threading.Lock()


def _throwaway_token() -> str:
    with _lock:
        n = next(_counter)
    email = f"throwaway-{os.getpid()}-{n}@fuzz.example.com"
    reg = requests.post(
        f"{BASE_URL}/api/auth/register",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    if reg.status_code != 201:
        raise RuntimeError(f"throwaway register: {reg.status_code} {reg.text}")
    login = requests.post(
        f"{BASE_URL}/api/auth/login-json",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    if login.status_code != 200:
        raise RuntimeError(f"throwaway login: {login.status_code} {login.text}")
    return login.json()["access_token"]


# refresh_interval=None: no caching, `get` runs for every case (a throwaway user per case);
# retry_on=[]: a 401 is an answer to check, not a reason to log in again and resend.
@schemathesis.auth(refresh_interval=None if MODE == "throwaway" else 3600, retry_on=[])
class FuzzAuth:
    def get(self, case, context):
        if MODE == "throwaway":
            return _throwaway_token()
        return os.environ["FUZZ_BEARER"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
