"""The PyPI client `outsetapy` (pinned in requirements.txt) pointed at outseta-gateway, making
the calls a signed-in user's app would make, its bugs included (README, "outsetapy").

    python3 outsetapy_driver.py <gateway-url> <email> <password> <other-email> \\
        <other-person-uid> <other-account-uid> <other-subscription-uid> <other-case-uid>

Prints one JSON object per line, one per call:

    {"call": "crm.people.get(own)", "ok": true, "status": 200, "error": null,
     "exchanges": [{"method": "GET", "target": "/api/v1/crm/people/…",
                    "authorization": "bearer", "status": 200}], …facts about the result}

`ok`: the call returned rather than raised. `status`: the HTTP status of its last request.
`error`: what it raised. `exchanges`: every request it sent, with the status it got, recorded
by wrapping `requests.request` (the function outsetapy sends with; the call is otherwise
untouched, and of the Authorization header only the scheme is kept). Exits 0 once every call
ran, whatever the calls did: tests/clients.rs judges the outcomes.

Pointing outsetapy at the gateway:

    client = OutsetaApiClient(subdomain="unused", accessToken=token)
    client.user.store.base_url = "<gateway>/api/v1/"       # one Store, shared by all
    client.user.store.server_auth = client.user.store.user_auth
"""

import asyncio
import base64
import json
import sys
from urllib.parse import urlsplit

import requests

from outsetapy import OutsetaApiClient
from outsetapy.api.user.profile import ProfileUpdate

_send = requests.request
_exchanges = []


def _recording_request(method, url, **kwargs):
    parts = urlsplit(url)
    sent = (kwargs.get("headers") or {}).get("Authorization")
    entry = {
        "method": method,
        "target": parts.path + ("?" + parts.query if parts.query else ""),
        "authorization": sent.split(" ", 1)[0] if sent else None,
        "status": None,
    }
    _exchanges.append((entry, None))
    response = _send(method, url, **kwargs)
    entry["status"] = response.status_code
    _exchanges[-1] = (entry, response)
    return response


requests.request = _recording_request


def body_of(response):
    try:
        return response.json()
    except ValueError:
        return response.text


def claims_of(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def call(name, make, describe=None, after=None):
    """Runs one outsetapy call, prints what happened, returns (result, last answer's body).
    `describe` picks facts from a result; `after` reads facts once the call is over."""
    _exchanges.clear()
    out = {"call": name, "ok": False, "status": None, "error": None}
    try:
        result = await make()
        out["ok"] = True
        if describe is not None:
            out.update(describe(result))
    except Exception as e:  # outsetapy raises Exception(<requests.Response>) on a non-2xx
        result = None
        out["error"] = f"{type(e).__name__}: {e}"
    if after is not None:
        out.update(after())
    last = _exchanges[-1][1] if _exchanges else None
    body = body_of(last) if last is not None else None
    if last is not None and last.status_code >= 400:
        out["body"] = body
        if isinstance(body, dict) and "code" in body:
            out["code"] = body["code"]  # the gateway's problem+json
    out["exchanges"] = [entry for entry, _ in _exchanges]
    out["status"] = out["exchanges"][-1]["status"] if _exchanges else None
    print(json.dumps(out, default=str), flush=True)
    return result, body


def listed(items):
    return {"count": len(items), "uids": [getattr(i, "Uid", None) for i in items]}


async def main(
    gateway, email, password, other_email, other_person, other_account, other_sub, other_case
):
    base = gateway.rstrip("/") + "/api/v1/"  # outsetapy urljoins onto it: it must end in '/'

    # outsetapy's own login: it sends POST tokens, then awaits the synchronous
    # requests.Response (TypeError); it would have stored the token in
    # `user_auth.access_token`, which its Authorization header never reads.
    client = OutsetaApiClient(subdomain="unused")
    client.user.store.base_url = base
    client.user.store.server_auth = client.user.store.user_auth
    await call(
        "user.login",
        lambda: client.user.login(email, password),
        after=lambda: {"token_stored": client.user.store.user_auth.is_ready},
    )

    # The way that works: one plain POST for the token, handed to the constructor.
    token = requests.post(
        base + "tokens", json={"username": email, "password": password}, timeout=30
    ).json()["access_token"]
    claims = claims_of(token)
    me, account = claims["sub"], claims["outseta:accountUid"]
    own_sub = claims["outseta:subscriptionUid"]
    client = OutsetaApiClient(subdomain="unused", accessToken=token)
    store = client.user.store
    store.base_url = base
    store.server_auth = store.user_auth  # crm.* and billing.* send the user's bearer too

    def profile(p):
        return {"uid": p.Uid, "email": p.Email, "first_name": p.FirstName}

    await call("user.profile.get()", lambda: client.user.profile.get(), profile)
    await call(
        "user.profile.get(fields)",
        lambda: client.user.profile.get(fields="*,PersonAccount.*"),
        lambda p: {"uid": p.Uid, "accounts": len(p.PersonAccount or [])},
    )
    await call(
        "user.profile.update",
        lambda: client.user.profile.update(ProfileUpdate(me, FirstName="Renamed")),
    )
    await call("user.profile.get() after update", lambda: client.user.profile.get(), profile)
    await call(
        "user.password.update", lambda: client.user.password.update(password, password)
    )

    def person(p):
        return {"uid": p["Uid"], "email": p["Email"]}

    await call("crm.people.get(own)", lambda: client.crm.people.get(me), person)
    await call("crm.people.get(other)", lambda: client.crm.people.get(other_person), person)
    await call("crm.people.get_all", lambda: client.crm.people.get_all({}), listed)

    def acct(a):
        members = [pa["Person"]["Uid"] for pa in a.PersonAccount if pa.get("Person")]
        return {"uid": a.Uid, "name": a.Name, "members": members}

    await call("crm.accounts.get(own)", lambda: client.crm.accounts.get(account), acct)
    await call(
        "crm.accounts.get(own, fields)",
        lambda: client.crm.accounts.get(
            account, {"fields": "*,PersonAccount.*,PersonAccount.Person.Uid"}
        ),
        acct,
    )
    await call(
        "crm.accounts.get(other, fields)",
        lambda: client.crm.accounts.get(other_account, {"fields": "*"}),
        acct,
    )
    await call("crm.accounts.get_all", lambda: client.crm.accounts.get_all({}), listed)

    plans = client.billing.plans
    await call("billing.plans.get_all()", lambda: plans.get_all(), listed)
    await call("billing.plans.get_all(limit=1)", lambda: plans.get_all(limit=1), listed)
    await call("billing.plans.get_all(limit=2)", lambda: plans.get_all(limit=2), listed)
    await call(
        "billing.plan_families.get_all",
        lambda: client.billing.plan_families.get_all({}),
        listed,
    )

    subs = client.billing.subscriptions

    def sub(s):
        return {"uid": s.Uid, "account": s.Account_Uid}

    await call("billing.subscriptions.get_all", lambda: subs.get_all({}), listed)
    await call("billing.subscriptions.get(own)", lambda: subs.get(own_sub, {}), sub)
    await call("billing.subscriptions.get(other)", lambda: subs.get(other_sub, {}), sub)

    invoices = client.billing.invoices
    _, body = await call("billing.invoices.get_all", lambda: invoices.get_all({}), listed)
    # get_all raised after its request; its answer names an invoice to read by id.
    items = body.get("items") if isinstance(body, dict) else None
    invoice = items[0]["Uid"] if items else "none"
    await call(
        "billing.invoices.get_by_id(own)",
        lambda: invoices.get_by_id(invoice),
        lambda i: {"uid": i["Uid"], "account": i["Subscription"]["Account"]["Uid"]},
    )
    transactions = client.billing.transactions
    await call(
        "billing.transactions.get_all(own)", lambda: transactions.get_all(account), listed
    )
    await call(
        "billing.transactions.get_all(other)",
        lambda: transactions.get_all(other_account),
        listed,
    )
    await call("billing.usage.get_all", lambda: client.billing.usage.get_all({}), listed)

    cases = client.support.cases

    def case_list(items):
        senders = {(c.FromPerson or {}).get("Uid") for c in items}
        return {"count": len(items), "from": sorted(senders, key=str)}

    own_cases, _ = await call("support.cases.get_all()", lambda: cases.get_all(), case_list)
    own_case = own_cases[0].Uid if own_cases else "none"
    await call(
        "support.cases.get_all(FromPerson=other)",
        lambda: cases.get_all({"fields": "*,FromPerson.Uid", "FromPerson": {"Uid": other_person}}),
        case_list,
    )
    await call(
        "support.cases.add",
        lambda: cases.add({"Subject": "Hello", "Body": "<p>From outsetapy</p>", "Source": 1}),
    )
    # The gateway reads the case's author first (`precheck`), then forwards the reply.
    await call(
        "support.cases.add_reply_from_client(own)",
        lambda: cases.add_reply_from_client({"Case": {"Uid": own_case}, "Comment": "thanks"}),
    )
    await call(
        "support.cases.add_reply_from_client(other)",
        lambda: cases.add_reply_from_client({"Case": {"Uid": other_case}, "Comment": "hijack"}),
    )
    # `options: dict = {}` is one dict shared by every call, and the first get_all() wrote
    # its next offset (25) into it: this call starts there.
    await call("support.cases.get_all() again", lambda: cases.get_all(), case_list)

    await call("user.impersonate(other)", lambda: client.user.impersonate(other_email))


if __name__ == "__main__":
    if len(sys.argv) != 9:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(*sys.argv[1:]))
