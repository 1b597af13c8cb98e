"""Splits each profiled server's CPU per request by crate (bench/run.sh with PROFILE=1).

Reads <out>/<server>.flat (`perf report --no-children --sort dso,sym -g none --stdio`) and the
generator's line for the server in <out>/profile.jsonl; prints a Markdown table in µs/request.
"""
import json
import os
import re
import sys

GROUPS = [
    ("kernel (TCP, epoll, wake-ups, syscalls)", lambda dso, sym: dso.startswith("[kernel")),
    ("SHA-256", lambda dso, sym: "sha2" in sym or "sha256" in sym or "hmac" in sym),
    ("JSON (serde_json)", lambda dso, sym: "serde_json" in sym or "serde_core" in sym),
    ("malloc/free", lambda dso, sym: "libc" in dso and re.match(
        r"(malloc|_int_free|free|cfree|unlink_chunk|_int_malloc|_int_realloc|realloc|malloc_consolidate)", sym)),
    ("memcpy/memcmp", lambda dso, sym: "libc" in dso and "mem" in sym),
    ("hyper, httparse", lambda dso, sym: "hyper" in sym or "httparse" in sym),
    ("tokio (and the vDSO clock)", lambda dso, sym: "tokio" in sym or dso.startswith("[vdso")),
    ("axum, tower, http, bytes", lambda dso, sym: any(
        x in sym for x in ("axum", "tower", "http::", "bytes::", "http_body", "matchit"))),
    ("vobiz_webhooks", lambda dso, sym: "vobiz_webhooks" in sym),
]
NAMES = {"bare": "(a) bare", "naive": "(b) naive", "crate": "(c) example",
         "crate-redis": "(d) example, Redis", "express": "(e) Express", "flask": "(f) Flask",
         "layer": "(g) layer", "typed": "(h) typed"}


def split(path):
    shares = {}
    for line in open(path):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        group = next((name for name, test in GROUPS if test(dso, sym)), "other")
        shares[group] = shares.get(group, 0.0) + pct
    return shares


def main():
    out, servers = sys.argv[1], sys.argv[2:]
    runs = {}
    for line in open(os.path.join(out, "profile.jsonl")):
        run = json.loads(line)
        runs[run["label"]] = run
    cols = [s for s in servers if s in runs and os.path.exists(os.path.join(out, s + ".flat"))]
    shares = {s: split(os.path.join(out, s + ".flat")) for s in cols}
    per_req = {s: runs[s]["server_cpu_us_per_req"] for s in cols}
    print("| µs of server CPU per request | " + " | ".join(NAMES.get(s, s) for s in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for group in [name for name, _ in GROUPS] + ["other"]:
        print("| %s | %s |" % (group, " | ".join(
            "%.1f" % (shares[s].get(group, 0.0) / 100 * per_req[s]) for s in cols)))
    print("| **total** | %s |" % " | ".join("**%.1f**" % per_req[s] for s in cols))
    print("\nreq/s under perf: " + ", ".join(
        "%s %s" % (NAMES.get(s, s), f"{runs[s]['rps']:,.0f}") for s in cols))


main()
