"""Crash safety of event source mappings: the server is killed with SIGKILL while a mapping drains a queue and
restarted on the same data directory; every message still reaches the function (at least once: duplicates are
counted and printed), the queue ends empty and the mapping is still there."""

from __future__ import annotations

from async_helpers import wait_for
from conftest import UpdraftServer
from esm_helpers import counts_by_id, deploy, done_records, make_queue, send_many, wait_drained, wait_state

N_MESSAGES = 1000

# Slow enough (30 ms a batch) that the drain is still under way when the server is killed.
SLOW_RECORDER = (
    "import json, time\n"
    "def handler(event, context):\n"
    "    for r in event['Records']:\n"
    "        print('DONE ' + json.dumps(r, sort_keys=True))\n"
    "    time.sleep(0.03)\n"
    "    return {}\n"
)


def test_a_kill_9_during_a_drain_loses_no_message(tmp_path):
    srv = UpdraftServer(tmp_path)
    srv.start()
    try:
        lam, sqs = srv.client(), srv.client("sqs")
        name, _ = deploy(lam, SLOW_RECORDER, "esmcrash", Timeout=3)
        # A short visibility timeout: what was in flight at the kill comes back soon after the restart.
        url, arn = make_queue(sqs, VisibilityTimeout=3)
        ids = send_many(sqs, url, [f"crash-{i}" for i in range(N_MESSAGES)])
        m = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=10,
                                            ScalingConfig={"MaximumConcurrency": 2})
        wait_for("the drain to be under way", lambda: len(counts_by_id(done_records(srv, name))) >= 100,
                 timeout=120, interval=0.1)

        srv.proc.kill()  # SIGKILL: no shutdown, batches in flight, deletes maybe half-committed
        srv.proc.wait()
        srv.proc = None
        srv.start()
        lam, sqs = srv.client(), srv.client("sqs")
        at_restart = counts_by_id(done_records(srv, name))
        print(f"\nprocessed by the time the server was back: {len(at_restart)} of {N_MESSAGES}")
        assert len(at_restart) < N_MESSAGES, "the kill came too late to interrupt the drain; the test proved nothing"
        assert wait_state(lam, m["UUID"], "Enabled")

        got = wait_drained(srv, sqs, url, name, ids, timeout=300)
        duplicates = {k: v for k, v in got.items() if v > 1}
        print(f"processed {len(got)} distinct messages, {sum(got.values())} invocations of a record, "
              f"{len(duplicates)} processed more than once")
        assert set(got) == set(ids)
    finally:
        srv.stop()
