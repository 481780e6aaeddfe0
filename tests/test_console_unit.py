"""The web console's parts that need no runtime: its setting, the ready line, access, the API's
conversions and the pages' escaping (tests/integration/test_console.py drives the real thing)."""

from __future__ import annotations

import calendar

import pytest

from endure.proto import records_pb2 as pb
from endure.runtime.auth import TenantResolver, digest
from endure.runtime.config import ConfigError, load_config
from endure.runtime.console.access import Access
from endure.runtime.console.data import ConsoleError, entry_json, parse_time, payload_json
from endure.runtime.console.pages import h, journal_items, payload
from endure.runtime.ready import ReadyLine


def test_the_console_setting_defaults_to_loopback_and_off_disables_it() -> None:
    assert load_config(environ={}).console == "127.0.0.1:7072"
    assert load_config(environ={"ENDURE_CONSOLE": "off"}).console is None
    assert load_config(overrides={"console": "127.0.0.1:0"}, environ={}).console == "127.0.0.1:0"
    with pytest.raises(ConfigError, match="console"):
        load_config(overrides={"console": "7072"}, environ={})


def test_the_ready_line_names_the_console_when_it_serves() -> None:
    line = ReadyLine("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
    assert line.format().endswith(" metrics=127.0.0.1:3 console=127.0.0.1:4")
    assert ReadyLine.parse(line.format()) == line
    assert ReadyLine.parse("endure: ready ingress=a:1 admin=a:2 metrics=a:3") == ReadyLine("a:1", "a:2", "a:3", "")
    assert ReadyLine.parse("endure: ready ingress=a:1 admin=a:2").console == ""


def test_access_admin_token_tenant_keys_and_sessions() -> None:
    tenants = TenantResolver(True, {"acme": [digest("acme-key")]})
    access = Access(True, digest("root"), tenants)
    assert access.required
    assert access.principal("root") is not None and access.principal("root").admin  # type: ignore[union-attr]
    acme = access.principal("acme-key")
    assert acme is not None and acme.tenant == "acme" and not acme.admin
    assert access.principal("nope") is None and access.principal(None) is None
    signed = access.sign_in("acme-key")
    assert signed is not None and access.session(signed[0]) == acme
    assert access.sign_in("nope") is None and access.session("forged") is None
    access.sign_out(signed[0])
    assert access.session(signed[0]) is None
    # Auth off and no admin token: open, as the admin API is.
    open_access = Access(False, None, TenantResolver(False, {}))
    assert not open_access.required and open_access.principal(None).admin  # type: ignore[union-attr]
    # Auth off but an admin token: only the token signs in (API keys mean nothing then).
    token_only = Access(False, digest("root"), tenants)
    assert token_only.principal("acme-key") is None and token_only.principal("root") is not None


def test_times_relative_or_iso() -> None:
    now = 1_800_000_000_000
    assert parse_time("", now) == 0
    assert parse_time("15m", now) == now - 15 * 60_000
    assert parse_time("2d", now) == now - 2 * 86_400_000
    midnight = calendar.timegm((2027, 1, 15, 0, 0, 0)) * 1000
    assert parse_time("2027-01-15T00:00", now) == midnight  # UTC unless a zone is named
    assert parse_time("2027-01-15T01:00+01:00", now) == midnight
    with pytest.raises(ConsoleError) as bad:
        parse_time("soon", now)
    assert bad.value.status == 400


def test_results_are_cut_in_lists_and_bytes_are_base64() -> None:
    big = payload_json(b'"' + b"x" * 10_000 + b'"')
    assert big is not None and big["truncated"] and len(big["text"]) == 4096 and big["size"] == 10_002
    assert payload_json(b"\xff\x00") == {"type": "value", "encoding": "base64", "size": 2, "truncated": False,
                                         "text": "/wA="}
    failure = payload_json(failure=pb.Failure(code=409, message="no", cause=pb.FAILURE_CANCELLED))
    assert failure == {"type": "failure", "code": 409, "message": "no", "cause": "cancelled"}
    sleep = entry_json("inv_x", 3, pb.JournalEntry(sleep=pb.SleepEntry(wake_at_ms=5), appended_at_ms=20), 12)
    assert sleep["complete"] is False and sleep["since_previous_ms"] == 8 and sleep["wake_at_ms"] == 5


def test_pages_escape_what_handlers_and_clients_wrote() -> None:
    evil = "<script>alert(1)</script>"
    assert "<script>" not in h(evil)
    assert "<script>" not in payload(payload_json(evil.encode()))
    entry = entry_json("inv_x", 0, pb.JournalEntry(name=evil, run=pb.RunEntry(), value=evil.encode()), None)
    html = journal_items("inv_x", [entry])
    assert "<script>" not in html and "&lt;script&gt;" in html
