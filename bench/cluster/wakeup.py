#!/usr/bin/env python3
"""The cross-node wake-up hop, PostgreSQL LISTEN/NOTIFY vs NATS JetStream,
measured the same way (issue 15; bench/cluster/README.md).

Each sample: t0, a PostgreSQL transaction that inserts one row (the outbox
commit), then the wake-up, received on another connection in the same
process (one monotonic clock):
  pg:   pg_notify() inside the transaction: delivered at COMMIT.
  nats: after COMMIT, a JetStream publish (awaiting the stream's ack) to a
        subject a push consumer on a second NATS connection reads.
latency = receive time - t0. Samples are paced (--rate per second), as
commits of a loaded node are.

  python3 wakeup.py --pg postgres://postgres@127.0.0.1:5432/postgres \
                    --nats nats://127.0.0.1:4222 --samples 2000 --rate 200
Needs: pip install nats-py 'psycopg[binary]'.
"""
import argparse
import asyncio
import statistics
import time

import nats
import psycopg


def summary(name, lat):
    lat = sorted(lat)
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    return (f"{name:5} n={len(lat)} p50={q(0.50)*1e3:.3f} ms p90={q(0.90)*1e3:.3f} ms "
            f"p99={q(0.99)*1e3:.3f} ms max={lat[-1]*1e3:.3f} ms mean={statistics.mean(lat)*1e3:.3f} ms")


async def run_pg(url, samples, rate):
    pub = await psycopg.AsyncConnection.connect(url, autocommit=True)
    sub = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await pub.execute("CREATE TABLE IF NOT EXISTS wakeup_probe (id BIGINT PRIMARY KEY, at BIGINT)")
    await pub.execute("TRUNCATE wakeup_probe")
    await sub.execute("LISTEN wakeup_probe")
    sent, lat = {}, []

    async def listen():
        async for n in sub.notifies():
            i = int(n.payload)
            lat.append(time.perf_counter() - sent.pop(i))
            if len(lat) == samples:
                return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.2)
    for i in range(samples):
        sent[i] = time.perf_counter()
        async with pub.transaction():
            await pub.execute("INSERT INTO wakeup_probe VALUES (%s, %s)", (i, 0))
            await pub.execute("SELECT pg_notify('wakeup_probe', %s)", (str(i),))
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(task, 30)
    await pub.execute("DROP TABLE wakeup_probe")
    return lat


async def run_nats(url, pg_url, samples, rate):
    db = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    await db.execute("CREATE TABLE IF NOT EXISTS wakeup_probe_n (id BIGINT PRIMARY KEY, at BIGINT)")
    await db.execute("TRUNCATE wakeup_probe_n")
    pub_nc = await nats.connect(url)
    sub_nc = await nats.connect(url)
    js = pub_nc.jetstream()
    try:
        await js.delete_stream("WAKEUP_PROBE")
    except Exception:
        pass
    await js.add_stream(name="WAKEUP_PROBE", subjects=["wakeup.probe"], storage="memory")
    sent, lat, done = {}, [], asyncio.Event()

    async def on_msg(msg):
        i = int(msg.data)
        lat.append(time.perf_counter() - sent.pop(i))
        await msg.ack()
        if len(lat) == samples:
            done.set()

    sub_js = sub_nc.jetstream()
    await sub_js.subscribe("wakeup.probe", cb=on_msg, deliver_policy="new")
    await asyncio.sleep(0.2)
    for i in range(samples):
        sent[i] = time.perf_counter()
        async with db.transaction():
            await db.execute("INSERT INTO wakeup_probe_n VALUES (%s, %s)", (i, 0))
        await js.publish("wakeup.probe", str(i).encode())
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(done.wait(), 30)
    await js.delete_stream("WAKEUP_PROBE")
    await db.execute("DROP TABLE wakeup_probe_n")
    await pub_nc.close()
    await sub_nc.close()
    return lat


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200)
    a = ap.parse_args()
    print(summary("pg", await run_pg(a.pg, a.samples, a.rate)))
    print(summary("nats", await run_nats(a.nats, a.pg, a.samples, a.rate)))


asyncio.run(main())
