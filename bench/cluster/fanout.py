#!/usr/bin/env python3
"""A /wsi subscriber on node B: for every event pushed, the time from its
commit (outbox.created_at, written by node A's writer at commit, same
host clock) to its arrival here. Prints p50/p99. Used by run.sh fanout."""
import argparse
import asyncio
import json
import time

import psycopg
import websockets


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tenant", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    arrived = {}
    async with websockets.connect(a.ws) as ws:
        await ws.send(json.dumps({"command": "auth", "username": "admin", "password": a.password}))
        await ws.recv()
        await ws.send(json.dumps({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a.tenant]}))
        await ws.recv()
        end = time.time() + a.seconds
        while time.time() < end:
            try:
                m = await asyncio.wait_for(ws.recv(), max(0.01, end - time.time()))
            except asyncio.TimeoutError:
                break
            now_ms = time.time() * 1000
            e = json.loads(m)
            if "event_id" in e:
                arrived[e["event_id"]] = now_ms
    async with await psycopg.AsyncConnection.connect(a.db) as db:
        cur = await db.execute("SELECT event_id, created_at FROM outbox WHERE event_id = ANY(%s)", (list(arrived),))
        lat = sorted(arrived[eid] - created for eid, created in await cur.fetchall())
    if not lat:
        print(f"{a.label}: no events")
        return
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(f"{a.label:13} events={len(lat)} p50={q(0.5):.1f} ms p90={q(0.9):.1f} ms p99={q(0.99):.1f} ms max={lat[-1]:.1f} ms")


asyncio.run(main())
