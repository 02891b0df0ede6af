#!/usr/bin/env python3
"""A second SCIM 2.0 server for onboard's tests, one that differs from scim2-server wherever
RFC 7643/7644 leave room (or real providers stray), each difference behind a switch. Python's
standard library only; users and groups in memory; loopback only.

    scim_dialect.py --port 8080 --token T [--group NAME[:MEMBERS]]... [switches]

Switches (each a quirk seen in a real provider):
  --ignore-member-filter   the `members[...]` part of a filter matches every group (django-scim2)
  --no-external-id-filter  `externalId eq ...` matches nothing (the attribute is not filterable)
  --post-429 N             every Nth POST /Users answers 429 with --retry-after
  --retry-after SPEC       seconds (`40`), or `date+S`: an HTTP date S seconds after the Date header
  --flaky-503 N            every Nth request answers a proxy's 503 in HTML (not JSON)
  --slow-get N:SECONDS     every Nth GET answers only after SECONDS
  --if-match               PATCH needs If-Match with the resource's current ETag (412 without)
  --no-etag                no ETag header and no meta.version (with --if-match: nothing to send)
  --json-only              a request body must be `Content-Type: application/json` (415 otherwise)
  --rate POSTS:WRITES      at most POSTS POST /Users and WRITES writes per second (token buckets
                           of one second), 429 with `Retry-After: 1` beyond them
  --no-user-groups         users do not list their `groups` (as scim2-server)

`--group NAME:50000` makes a group with that many members (other people's, with `$ref` and
`display` as real providers give them): read whole, it is megabytes.

The tests' own checks go to paths under /_ (see `test_hook`), never counted. GET /_stats
(with the token) answers the requests counted so far: every request, by method
and resource type, the 429s and 503s given, the POST /Users that created a user, and the
requests that would read a group whole (a group request naming neither `attributes` nor
`excludedAttributes`).
It runs until killed.
"""

import argparse
import email.utils
import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Bad(Exception):
    def __init__(self, status, detail, scim_type=None):
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


# --- filters (RFC 7644 §3.4.2.2), the part onboard and the tests use ---------------------------

TOKEN = re.compile(r'\s*(\(|\)|\[|\]|"(?:[^"\\]|\\.)*"|[A-Za-z_$][\w.$:-]*)')


def tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise Bad(400, f"cannot read the filter at {pos}", "invalidFilter")
        out.append(m.group(1))
        pos = m.end()
    return out


class Parser:
    """filter := or; or := and ("or" and)*; and := unit ("and" unit)*;
    unit := "not"? "(" or ")" | attr "[" or "]" | attr op value | attr "pr"."""

    def __init__(self, text, quirks):
        self.t, self.i, self.quirks = tokens(text), 0, quirks

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self):
        tok = self.peek()
        if tok is None:
            raise Bad(400, "the filter ends too soon", "invalidFilter")
        self.i += 1
        return tok

    def parse(self):
        f = self.disjunction()
        if self.peek() is not None:
            raise Bad(400, f"unexpected {self.peek()} in the filter", "invalidFilter")
        return f

    def disjunction(self):
        parts = [self.conjunction()]
        while (self.peek() or "").lower() == "or":
            self.take()
            parts.append(self.conjunction())
        return lambda r: any(p(r) for p in parts)

    def conjunction(self):
        parts = [self.unit()]
        while (self.peek() or "").lower() == "and":
            self.take()
            parts.append(self.unit())
        return lambda r: all(p(r) for p in parts)

    def unit(self):
        tok = self.take()
        if tok.lower() == "not":
            inner = self.unit()
            return lambda r: not inner(r)
        if tok == "(":
            inner = self.disjunction()
            if self.take() != ")":
                raise Bad(400, "a ( without )", "invalidFilter")
            return inner
        attr = tok
        if self.peek() == "[":
            self.take()
            inner = self.disjunction()
            if self.take() != "]":
                raise Bad(400, "a [ without ]", "invalidFilter")
            if attr == "members" and self.quirks.ignore_member_filter:
                return lambda r: True
            return lambda r: any(inner(v) for v in (r.get(attr) or []) if isinstance(v, dict))
        op = self.take().lower()
        if op == "pr":
            return lambda r: lookup(r, attr) not in (None, [], "")
        raw = self.take()
        value = json.loads(raw) if raw.startswith('"') else {"true": True, "false": False,
                                                             "null": None}.get(raw, raw)
        if op != "eq":
            raise Bad(400, f"operator {op} is not supported", "invalidFilter")
        if attr == "externalId" and self.quirks.no_external_id_filter:
            return lambda r: False
        exact = attr in ("id", "externalId", "value", "members.value")

        def eq(r):
            have = lookup(r, attr)
            values = have if isinstance(have, list) else [have]
            for h in values:
                if isinstance(h, str) and isinstance(value, str):
                    if (h == value) if exact else (h.lower() == value.lower()):
                        return True
                elif h == value:
                    return True
            return False

        return eq


def lookup(resource, path):
    head, _, rest = path.partition(".")
    value = resource.get(head)
    if not rest:
        return value
    if isinstance(value, list):
        return [v.get(rest) for v in value if isinstance(v, dict)]
    return value.get(rest) if isinstance(value, dict) else None


# --- the store --------------------------------------------------------------------------------


class Store:
    def __init__(self, quirks, base):
        self.q, self.base = quirks, base
        self.lock = threading.Lock()
        self.users, self.groups = {}, {}
        self.members = {}  # group id -> {user id: member dict}
        self.version = {}  # resource id -> int
        self.stats = {"requests": 0, "posts": 0, "created": 0, "writes": 0, "429": 0, "503": 0,
                      "whole_group_reads": 0, "by": {}}
        self.counter = {"post": 0, "any": 0, "get": 0}
        self.buckets = {}

    def etag(self, rid):
        return f'W/"{self.version.get(rid, 1)}"'

    def bump(self, rid):
        self.version[rid] = self.version.get(rid, 1) + 1

    def meta(self, kind, rid):
        meta = {"resourceType": kind, "location": f"{self.base}/{kind}s/{rid}"}
        if not self.q.no_etag:
            meta["version"] = self.etag(rid)
        return meta

    def user_view(self, uid):
        u = dict(self.users[uid])
        u["meta"] = self.meta("User", uid)
        if not self.q.no_user_groups:
            u["groups"] = [{"value": gid, "display": g["displayName"],
                            "$ref": f"{self.base}/Groups/{gid}"}
                           for gid, g in self.groups.items() if uid in self.members[gid]]
        return u

    def group_view(self, gid, with_members=True):
        g = dict(self.groups[gid])
        g["meta"] = self.meta("Group", gid)
        if with_members:
            g["members"] = list(self.members[gid].values())
        return g

    def add_group(self, name, fake_members=0):
        gid = uuid.uuid4().hex
        self.groups[gid] = {"schemas": [GROUP], "id": gid, "displayName": name}
        self.members[gid] = {}
        for i in range(fake_members):
            mid = f"someone-{i:06d}-{uuid.uuid4().hex}"
            self.members[gid][mid] = {"value": mid, "$ref": f"{self.base}/Users/{mid}",
                                      "display": f"Someone Else Number {i}", "type": "User"}
        return gid


def project(resource, query):
    """`attributes` / `excludedAttributes` (RFC 7644 §3.9): id and schemas are always returned."""
    attrs = [a.strip() for a in query.get("attributes", [""])[0].split(",") if a.strip()]
    excluded = [a.strip() for a in query.get("excludedAttributes", [""])[0].split(",") if a.strip()]
    if attrs:
        keep = {a.split(".")[0] for a in attrs} | {"id", "schemas"}
        resource = {k: v for k, v in resource.items() if k in keep}
    for a in excluded:
        if a not in ("id", "schemas"):
            resource.pop(a.split(".")[0], None)
    return resource


# --- HTTP ---------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scim-dialect/1"

    def log_message(self, fmt, *args):
        # Each request with its time, to stderr (the tests' server.log).
        print(f"{time.time():.3f} " + fmt % args, file=sys.stderr, flush=True)

    def send(self, status, body=None, headers=None, content_type="application/scim+json"):
        data = b"" if body is None else (body if isinstance(body, bytes) else
                                         json.dumps(body).encode())
        self.send_response(status)
        if self.server.quirks.no_etag:
            headers = {k: v for k, v in (headers or {}).items() if k != "ETag"}
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass

    def error(self, status, detail, scim_type=None, headers=None):
        body = {"schemas": [ERROR], "status": str(status), "detail": detail}
        if scim_type:
            body["scimType"] = scim_type
        self.send(status, body, headers)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_PUT(self):
        self.handle_any("PUT")

    def handle_any(self, method):
        store, q = self.server.store, self.server.quirks
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [unquote(p) for p in url.path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self.error(401, "the bearer token is not right")
        if parts and parts[0].startswith("_"):
            with store.lock:
                return self.send(*self.test_hook(store, method, parts, raw))
        kind = parts[0] if parts else ""
        projected = "attributes" in query or "excludedAttributes" in query
        write = method != "GET"
        creating = method == "POST" and parts == ["Users"]
        with store.lock:
            store.stats["requests"] += 1
            key = f"{method} /{kind}" + ("/{id}" if len(parts) > 1 else "")
            store.stats["by"][key] = store.stats["by"].get(key, 0) + 1
            store.counter["any"] += 1
            flaky = q.flaky_503 and store.counter["any"] % q.flaky_503 == 0
            slow = 0
            if method == "GET":
                store.counter["get"] += 1
                if q.slow_get and store.counter["get"] % q.slow_get[0] == 0:
                    slow = q.slow_get[1]
            if creating:
                store.counter["post"] += 1
                store.stats["posts"] += 1
            busy = creating and q.post_429 and store.counter["post"] % q.post_429 == 0
            limited = self.over_rate(store, q, creating, write)
            if kind == "Groups" and method != "POST" and not projected:
                # A group read whole (its members with it): what onboard must never ask for.
                store.stats["whole_group_reads"] += 1
            if flaky:
                store.stats["503"] += 1
            elif busy or limited:
                store.stats["429"] += 1
        if flaky:
            return self.send(503, b"<html><body><h1>503 Service Unavailable</h1>"
                             b"No server is available to handle this request.</body></html>",
                             content_type="text/html")
        if busy:
            return self.error(429, "too many requests", headers={"Retry-After": self.retry_after()})
        if limited:
            return self.error(429, "rate limited", headers={"Retry-After": "1"})
        if slow:
            time.sleep(slow)
        if write and raw:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            allowed = ["application/json"] if q.json_only else ["application/json",
                                                                "application/scim+json"]
            if ctype not in allowed:
                return self.error(415, f"Content-Type must be {' or '.join(allowed)}")
        try:
            body = json.loads(raw) if raw else None
            with store.lock:
                status, answer, headers = self.route(store, method, parts, query, body)
        except Bad as e:
            return self.error(e.status, e.detail, e.scim_type)
        if write:
            with store.lock:
                store.stats["writes"] += 1
                if creating and status == 201:
                    store.stats["created"] += 1
        self.send(status, answer, headers)

    def test_hook(self, store, method, parts, raw):
        """For the tests' own checks, not counted: /_stats, /_users (GET every user, POST one
        as someone else would), /_group/NAME (its id), /_members/ID (its real members' ids)."""
        if parts == ["_stats"]:
            return 200, store.stats
        if parts == ["_users"] and method == "GET":
            return 200, [store.user_view(u) for u in store.users]
        if parts == ["_users"] and method == "POST":
            user = json.loads(raw)
            user["id"] = uuid.uuid4().hex
            store.users[user["id"]] = user
            return 201, user
        if len(parts) == 2 and parts[0] == "_group":
            ids = [g for g, v in store.groups.items() if v["displayName"] == parts[1]]
            return (200, ids[0]) if ids else (404, None)
        if len(parts) == 2 and parts[0] == "_members":
            return 200, [m for m in store.members.get(parts[1], {}) if m in store.users]
        return 404, None

    def retry_after(self):
        spec = self.server.quirks.retry_after
        if spec.startswith("date+"):
            return email.utils.formatdate(time.time() + float(spec[5:]), usegmt=True)
        return spec

    def over_rate(self, store, q, creating, write):
        if not q.rate:
            return False
        now = time.monotonic()
        checks = ([("posts", q.rate[0])] if creating else []) + ([("writes", q.rate[1])]
                                                                  if write else [])
        for name, rate in checks:
            level, at = store.buckets.get(name, (rate, now))
            level = min(rate, level + (now - at) * rate)
            if level < 1:
                store.buckets[name] = (level, now)
                return True
            store.buckets[name] = (level, now)
        for name, rate in checks:
            level, at = store.buckets[name]
            store.buckets[name] = (level - 1, at)
        return False

    def route(self, store, method, parts, query, body):
        q = self.server.quirks
        if parts == ["Users"] and method == "GET":
            # Filtered on the stored users (no filter here reads `groups`), then shown.
            found = self.listing(store, query, list(store.users.values()), shown=False)
            found["Resources"] = [project(store.user_view(u["id"]), query)
                                  for u in found["Resources"]]
            return 200, found, {}
        if parts == ["Groups"] and method == "GET":
            views = [store.group_view(g) for g in store.groups]
            return 200, self.listing(store, query, views), {}
        if parts == ["Users"] and method == "POST":
            name = (body or {}).get("userName")
            if not name:
                raise Bad(400, "userName is required", "invalidValue")
            if any(u["userName"].lower() == name.lower() for u in store.users.values()):
                raise Bad(409, f"userName {name} is taken", "uniqueness")
            uid = uuid.uuid4().hex
            user = {k: v for k, v in body.items() if k not in ("id", "meta", "groups")}
            user["id"] = uid
            store.users[uid] = user
            view = store.user_view(uid)
            return 201, view, {"ETag": store.etag(uid), "Location": view["meta"]["location"]}
        if parts == ["Groups"] and method == "POST":
            gid = store.add_group(body["displayName"])
            return 201, store.group_view(gid), {"ETag": store.etag(gid)}
        if len(parts) == 2 and parts[0] == "Users" and method == "GET":
            if parts[1] not in store.users:
                raise Bad(404, "no such user")
            view = project(store.user_view(parts[1]), query)
            return 200, view, {"ETag": store.etag(parts[1])}
        if len(parts) == 2 and parts[0] == "Groups" and method == "GET":
            if parts[1] not in store.groups:
                raise Bad(404, "no such group")
            view = project(store.group_view(parts[1]), query)
            return 200, view, {"ETag": store.etag(parts[1])}
        if len(parts) == 2 and parts[0] == "Groups" and method == "PATCH":
            gid = parts[1]
            if gid not in store.groups:
                raise Bad(404, "no such group")
            if q.if_match:
                given = self.headers.get("If-Match")
                if given is None:
                    raise Bad(412, "this server requires If-Match on PATCH")
                if given.strip() not in (store.etag(gid), "*"):
                    raise Bad(412, "the resource changed (If-Match does not match its ETag)")
            for op in (body or {}).get("Operations", []):
                if op.get("op", "").lower() != "add" or op.get("path") != "members":
                    raise Bad(400, "only add of members is supported here", "invalidPath")
                for m in op.get("value", []):
                    uid = m["value"]
                    if uid not in store.users:
                        raise Bad(400, f"no user {uid}", "invalidValue")
                    store.members[gid].setdefault(uid, {
                        "value": uid, "$ref": f"{self.server.base}/Users/{uid}",
                        "display": store.users[uid].get("displayName", ""), "type": "User"})
            store.bump(gid)
            return 200, project(store.group_view(gid), query), {"ETag": store.etag(gid)}
        raise Bad(404, f"no route {method} /{'/'.join(parts)}")

    def listing(self, store, query, resources, shown=True):
        text = query.get("filter", [None])[0]
        if text:
            match = Parser(text, self.server.quirks).parse()
            resources = [r for r in resources if match(r)]
        if shown:
            resources = [project(r, query) for r in resources]
        return {"schemas": [LIST], "totalResults": len(resources), "startIndex": 1,
                "itemsPerPage": len(resources), "Resources": resources}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--group", action="append", default=[])
    p.add_argument("--ignore-member-filter", action="store_true")
    p.add_argument("--no-external-id-filter", action="store_true")
    p.add_argument("--no-user-groups", action="store_true")
    p.add_argument("--post-429", type=int, default=0)
    p.add_argument("--retry-after", default="40")
    p.add_argument("--flaky-503", type=int, default=0)
    p.add_argument("--slow-get", default=None)
    p.add_argument("--if-match", action="store_true")
    p.add_argument("--json-only", action="store_true")
    p.add_argument("--no-etag", action="store_true")
    p.add_argument("--rate", default=None)
    q = p.parse_args()
    q.slow_get = tuple(float(x) for x in q.slow_get.split(":")) if q.slow_get else None
    if q.slow_get:
        q.slow_get = (int(q.slow_get[0]), q.slow_get[1])
    q.rate = tuple(float(x) for x in q.rate.split(":")) if q.rate else None
    server = ThreadingHTTPServer(("127.0.0.1", q.port), Handler)
    server.daemon_threads = True
    server.token, server.quirks = q.token, q
    server.base = f"http://127.0.0.1:{q.port}"
    server.store = Store(q, server.base)
    for spec in q.group:
        name, _, count = spec.partition(":")
        server.store.add_group(name, int(count or 0))
    server.serve_forever()


if __name__ == "__main__":
    main()
