"""Crash safety of the durable event path: every event answered 202 is delivered at least once, even when the server is
killed with SIGKILL while events are queued and in flight, and restarted on the same data directory."""

from __future__ import annotations

import collections
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from async_helpers import FAST_FLAGS, deploy, event_summary, lines, wait_for
from conftest import UpdraftServer

N_EVENTS = 300
SENDERS = 8

# Slow enough (50 ms each, four at a time) that most of the burst is still queued when the server is killed.
SLOW_RECORDER = (
    "import json, time\n"
    "def handler(event, context):\n"
    "    print('DELIVERED ' + str(event['seq']) + ' ' + context.aws_request_id)\n"
    "    time.sleep(0.05)\n"
    "    return event['seq']\n"
)


def delivered(srv: UpdraftServer, name: str) -> collections.Counter:
    return collections.Counter(int(e["message"].split()[1]) for e in lines(srv, name, "DELIVERED"))


def test_every_accepted_event_survives_a_kill_9(tmp_path):
    srv = UpdraftServer(tmp_path, extra_args=(*FAST_FLAGS, "--async-max-in-flight", "4"))
    srv.start()
    try:
        lam = srv.client()
        name, _ = deploy(lam, SLOW_RECORDER, "crash")
        local = threading.local()

        def send(seq: int) -> tuple[int, str] | None:
            if not hasattr(local, "client"):
                local.client = srv.client()
            r = local.client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"seq": seq}))
            if r["StatusCode"] != 202:
                return None
            return seq, r["ResponseMetadata"]["RequestId"]

        with ThreadPoolExecutor(SENDERS) as pool:
            accepted = dict(a for a in pool.map(send, range(N_EVENTS)) if a)
        assert len(accepted) == N_EVENTS, f"only {len(accepted)} of {N_EVENTS} accepted"

        srv.proc.kill()  # SIGKILL: no shutdown, no flush, leases left behind
        srv.proc.wait()
        srv.proc = None
        srv.start()
        at_restart = delivered(srv, name)
        print(f"\ndelivered by the time the server was back: {len(at_restart)} of {N_EVENTS}")
        assert len(at_restart) < N_EVENTS, "the kill came too late to interrupt the burst; the test proved nothing"

        got = wait_for("every accepted event", lambda: (d := delivered(srv, name)) and set(accepted) <= set(d) and d,
                       timeout=240)
        duplicates = {seq: n for seq, n in got.items() if n > 1}
        print(f"delivered {len(got)} distinct events, {sum(got.values())} deliveries, "
              f"{len(duplicates)} delivered more than once: {sorted(duplicates)[:20]}")
        assert set(got) == set(accepted)
        # Each delivery carried the request id the caller got back with its 202.
        for e in lines(srv, name, "DELIVERED"):
            _, seq, rid = e["message"].split()
            assert accepted[int(seq)] == rid, e
        s = wait_for("the queue to drain", lambda: (x := event_summary(srv, name)) and x["Pending"] + x["InFlight"] == 0 and x)
        assert s["Failed"] == 0 and s["Retrying"] == 0, s
    finally:
        srv.stop()
