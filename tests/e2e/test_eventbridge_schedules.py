"""EventBridge schedules: `rate(…)` rules fire Scheduled Events into functions, on a node whose
schedule minute is shortened (`--schedule-minute-ms`) and once in real time; rules survive a
restart and fires missed while the node was down are skipped, not replayed."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

from conftest import REGION, account_of, unique_name
from eventbridge_helpers import allow_rule, make_recorder, received, wait_received

# One schedule minute lasts this long on the fast node.
FAST_MINUTE_MS = 1000


def scheduled_rule(events, lam, fn: str, fn_arn: str, expr: str = "rate(1 minute)") -> str:
    rule = unique_name("tick")
    rule_arn = events.put_rule(Name=rule, ScheduleExpression=expr)["RuleArn"]
    allow_rule(lam, fn, rule_arn)
    events.put_targets(Rule=rule, Targets=[{"Id": "f", "Arn": fn_arn}])
    return rule_arn


def now_s() -> int:
    """Now, in whole seconds since the epoch (events carry whole-second times)."""
    return int(time.time())


def event_s(ev: dict) -> int:
    return int(datetime.strptime(ev["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def assert_scheduled_shape(ev: dict, rule_arn: str) -> None:
    assert set(ev) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources",
                       "detail"}, ev
    assert ev["detail-type"] == "Scheduled Event" and ev["source"] == "aws.events"
    assert ev["resources"] == [rule_arn] and ev["detail"] == {} and ev["version"] == "0"
    assert ev["region"] == REGION and ev["account"] == account_of(rule_arn)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev["time"]), ev["time"]


def test_rate_fires_with_a_fast_tick_and_survives_restart(server_factory):
    srv = server_factory(extra_args=("--schedule-minute-ms", str(FAST_MINUTE_MS)))
    lam, events = srv.client(), srv.client("events")
    fn, fn_arn = make_recorder(lam)
    rule_arn = scheduled_rule(events, lam, fn, fn_arn)
    rule = rule_arn.rsplit("/", 1)[1]
    got = wait_received(srv, fn, 2)
    assert_scheduled_shape(got[0], rule_arn)
    assert got[0]["id"] != got[1]["id"]

    # Disabled: no fire falls in the time it stays disabled (fires from before may still be on their way,
    # so the check is on the events' own times, not on counts).
    disabled_at = now_s()
    events.disable_rule(Name=rule)
    time.sleep(4 * FAST_MINUTE_MS / 1000)
    enabled_at = now_s()
    events.enable_rule(Name=rule)
    during = [e for e in received(srv, fn) if disabled_at + 1 < event_s(e) < enabled_at]
    assert during == [], during
    got = wait_received(srv, fn, len(received(srv, fn)) + 1)
    assert event_s(got[-1]) >= enabled_at

    # Down for a while: the rule survives, and resumes at its next fire; the fires missed while the node
    # was down are not replayed (a replayed fire carries a time from when the node was down).
    before = len(received(srv, fn))
    srv.stop()
    stopped_at = now_s()
    time.sleep(6 * FAST_MINUTE_MS / 1000)
    restarted_at = now_s()
    srv.start()
    lam, events = srv.client(), srv.client("events")
    d = events.describe_rule(Name=rule)
    assert d["ScheduleExpression"] == "rate(1 minute)" and d["State"] == "ENABLED" and d["Arn"] == rule_arn
    assert events.list_targets_by_rule(Rule=rule)["Targets"] == [{"Id": "f", "Arn": fn_arn}]
    assert json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]
    got = wait_received(srv, fn, before + 2)
    assert_scheduled_shape(got[-1], rule_arn)
    replayed = [e for e in got if stopped_at + 1 < event_s(e) < restarted_at]
    assert replayed == [], replayed
    assert any(event_s(e) >= restarted_at for e in got[before:]), got[before:]
    assert "fires missed while the node was down are skipped" in srv.stderr()
    events.remove_targets(Rule=rule, Ids=["f"])
    events.delete_rule(Name=rule)


def test_rate_one_minute_fires_in_real_time(server):
    lam, events = server.client(), server.client("events")
    fn, fn_arn = make_recorder(lam)
    rule_arn = scheduled_rule(events, lam, fn, fn_arn)
    started = time.monotonic()
    # The first fire is one minute after the rule was set; allow the loaded machine some slack.
    got = wait_received(server, fn, 1, timeout=150)
    waited = time.monotonic() - started
    assert waited >= 55, f"a rate(1 minute) rule fired after {waited:.1f}s"
    assert_scheduled_shape(got[0], rule_arn)
    rule = rule_arn.rsplit("/", 1)[1]
    events.remove_targets(Rule=rule, Ids=["f"])
    events.delete_rule(Name=rule)
