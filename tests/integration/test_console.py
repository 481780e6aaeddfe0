"""Issue 17: the web console, against a real runtime (auth on: an admin token and two tenants) and a
real worker. The JSON API is checked directly; the pages are driven in the system Chromium
(Debian's package, which .ci/run installs) through Playwright.

Screenshots of the main pages go to this run's temporary folder (printed at the end of the run)
and, when ENDURE_SCREENSHOTS=DIR is set, also to DIR.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import http.cookiejar
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, get_limits, wait_until

from endure.sdk.client import Client, InvocationError

APP = "consoleapp:app"
ADMIN = "console-admin-secret"
WORKER = "console-worker-secret"
KEYS = {"a": "key-tenant-a", "b": "key-tenant-b"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LONG_JOURNAL = 10_000


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


CONFIG = f"""
auth = true
admin_token_sha256 = "{sha(ADMIN)}"
worker_token_sha256 = "{sha(WORKER)}"

[tenants.a]
api_keys_sha256 = ["{sha(KEYS['a'])}"]

[tenants.b]
api_keys_sha256 = ["{sha(KEYS['b'])}"]
"""


def start(root: Path, processes: int = 1) -> Cluster:
    (root / "endure.toml").write_text(CONFIG)
    cluster = Cluster(root, env={"ENDURE_TEST_DIR": str(root), "ENDURE_WORKER_TOKEN": WORKER}, admin_token=ADMIN,
                      processes=processes, console=True)
    try:
        cluster.start_runtime(["--config", str(root / "endure.toml")])
        cluster.start_worker(APP, name="w1")
        for node in range(1, processes):  # it registers with every node (and so every node knows its services)
            admin = cluster.node_admin(node)
            wait_until(lambda a=admin: "w1" in cluster.connected_workers(a), what=f"w1 on node {node}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


class Seeded:
    """The module's runtime and the invocations made before the tests."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.url = f"http://{cluster.console}"
        self.ids: dict[str, str] = {}

    def run(self, coro: Any) -> Any:
        """Run a client coroutine to its end (in a thread: Playwright's sync API holds this one's loop)."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coro).result()

    async def seed(self) -> None:
        async with Client(self.cluster.ingress, api_key=KEYS["a"]) as a, \
                Client(self.cluster.ingress, api_key=KEYS["b"]) as b:
            self.ids["checkout"] = await a.send("shop/checkout", {"item": "tea", "qty": 2}, idempotency_key="order-17")
            await a.attach(self.ids["checkout"])
            self.ids["refund"] = await a.send("shop/refund", {"item": "tea", "qty": 1})
            with pytest.raises(InvocationError):
                await a.attach(self.ids["refund"])
            self.ids["long"] = await a.send("cart/fill", LONG_JOURNAL, key="bob")
            await a.attach(self.ids["long"], timeout=120)
            self.ids["signup"] = await a.send("signup/run", "ada@example.com", key="ada")
            self.ids["b"] = await b.send("shop/checkout", {"item": "coffee", "qty": 1})
            await b.attach(self.ids["b"])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    cluster = start(tmp_path_factory.mktemp("console"))
    try:
        s = Seeded(cluster)
        s.run(s.seed())
        yield s
    finally:
        cluster.stop()


def call(url: str, path: str, token: str | None = ADMIN, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None, opener: urllib.request.OpenerDirector | None = None,
         ) -> tuple[int, Any]:
    """(HTTP status, JSON answer) of one console API request."""
    request = urllib.request.Request(url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw.startswith(b"{") else raw.decode()


def ok(url: str, path: str, token: str | None = ADMIN, **kw: Any) -> Any:
    status, answer = call(url, path, token, **kw)
    assert status == 200, (path, status, answer)
    return answer


def listed(url: str, query: str = "", token: str = ADMIN) -> list[dict[str, Any]]:
    return ok(url, f"/api/invocations?{query}", token)["invocations"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- the JSON API


def test_access_needs_the_admin_token_or_a_tenant_key_and_a_key_sees_its_tenant_only(seeded: Seeded) -> None:
    url, ids = seeded.url, seeded.ids
    assert call(url, "/api/invocations", token=None)[0] == 401
    assert call(url, "/api/invocations", token="wrong")[0] == 401
    assert ok(url, "/api/whoami") == {"admin": True, "tenant": None, "access_required": True}
    assert {i["tenant"] for i in listed(url)} == {"a", "b"}

    mine = listed(url, token=KEYS["a"])
    assert mine and {i["tenant"] for i in mine} == {"a"}
    assert ids["b"] not in {i["id"] for i in mine}
    assert listed(url, "tenant=b", token=KEYS["a"]) == mine  # a tenant's filter is pinned to itself
    assert call(url, f"/api/invocations/{ids['b']}", token=KEYS["a"])[0] == 404
    assert call(url, f"/api/invocations/{ids['b']}/journal", token=KEYS["a"])[0] == 404
    assert call(url, f"/api/invocations/{ids['b']}/cancel", token=KEYS["a"], method="POST")[0] == 404
    assert listed(url, f"q={ids['b']}", token=KEYS["a"]) == []
    assert call(url, "/api/cluster", token=KEYS["a"])[0] == 403
    assert call(url, "/api/limits", token=KEYS["a"], method="POST", body={"tenant": "a", "max_running": 1})[0] == 403
    assert [t["name"] for t in ok(url, "/api/tenants", KEYS["a"])["tenants"]] == ["a"]

    # A page asked for under another host name (DNS rebinding) is refused: the console is on loopback.
    assert call(url, "/api/whoami", headers={"Host": f"attacker.example:{url.rsplit(':', 1)[1]}"})[0] == 403


def test_a_sign_in_cookie_works_and_a_change_through_it_needs_the_console_header(seeded: Seeded) -> None:
    url = seeded.url
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = urllib.parse.urlencode({"token": KEYS["a"], "next": "/invocations"}).encode()
    with opener.open(urllib.request.Request(url + "/login", data=form), timeout=30) as response:
        assert response.status == 200 and response.url.endswith("/invocations")  # redirected after sign-in
    assert ok(url, "/api/whoami", token=None, opener=opener)["tenant"] == "a"
    target = f"/api/invocations/{seeded.ids['checkout']}/cancel"
    status, answer = call(url, target, token=None, method="POST", opener=opener)
    assert status == 403 and "X-Endure-Console" in answer["error"]
    # With the header it is taken (and refused for what it is: the invocation is finished).
    status, answer = call(url, target, token=None, method="POST", opener=opener, headers={"X-Endure-Console": "1"})
    assert status == 409, answer
    bad = urllib.parse.urlencode({"token": "nobody"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url + "/login", data=bad), timeout=30)
    assert refused.value.code == 401


def test_invocations_filter_search_and_page_on_the_server(seeded: Seeded) -> None:
    url, ids = seeded.url, seeded.ids
    everything = listed(url, "limit=500")
    assert {ids[k] for k in ("checkout", "refund", "long", "signup", "b")} <= {i["id"] for i in everything}
    created = [i["created_at_ms"] for i in everything]
    assert created == sorted(created, reverse=True)  # newest first, over both partitions
    assert everything[0]["id"] in (ids["b"], listed(url, "tenant=b&service=cart")[0]["id"])  # the last made

    def only(query: str) -> set[str]:
        return {i["id"] for i in listed(url, query)}

    assert ids["refund"] in only("status=failed")
    assert all(i["outcome"] == "failed" for i in listed(url, "status=failed"))
    assert ids["checkout"] not in only("status=failed")
    assert only("status=in_flight") >= {ids["signup"]} and ids["checkout"] not in only("status=in_flight")
    assert only("service=shop&handler=refund") == {ids["refund"]}
    assert only("service=cart&key=bob") == {ids["long"]}
    of_b = listed(url, "tenant=b")  # b's checkout and the cart call it made
    assert {i["tenant"] for i in of_b} == {"b"} and {i["target"] for i in of_b} == {"shop/checkout", "cart/cart_add [alice]"}
    assert only(f"q={ids['long']}") == {ids["long"]}
    assert only("q=order-17") == {ids["checkout"]}  # an idempotency key
    assert ids["checkout"] in only("since=1h") and only("until=1h") == set()
    assert call(url, "/api/invocations?status=sleepy")[0] == 400
    assert call(url, "/api/invocations?since=yesterday-ish")[0] == 400

    # Pages of 2: each invocation once, the same set as one big page.
    seen: list[str] = []
    page: str | None = ""
    while page is not None:
        answer = ok(url, f"/api/invocations?limit=2&page={urllib.parse.quote(page)}")
        assert len(answer["invocations"]) <= 2
        seen += [i["id"] for i in answer["invocations"]]
        page = answer["next_page"]
    assert seen == [i["id"] for i in everything]


def test_an_invocation_shows_its_header_and_its_journal_in_pages(seeded: Seeded) -> None:
    url, ids = seeded.url, seeded.ids
    checkout = ok(url, f"/api/invocations/{ids['checkout']}")
    assert checkout["status"] == "completed" and checkout["outcome"] == "ok" and checkout["final"]
    assert checkout["result"]["text"] == '"paid 6 for tea"' and checkout["attempts"] == 1
    assert checkout["deployment"].startswith(APP + "@") and checkout["idempotency_key"] == "order-17"
    kinds = [(e["kind"], e["name"]) for e in checkout["journal"]]
    assert kinds == [("run", "quote"), ("sleep", ""), ("run", "charge"), ("call", "cart/cart_add"), ("output", "")]
    call_entry = checkout["journal"][3]
    child = ok(url, f"/api/invocations/{call_entry['child']}")
    assert child["target"] == "cart/cart_add [alice]" and child["caller"] == ids["checkout"]
    assert all(e["since_previous_ms"] is not None for e in checkout["journal"][1:])
    assert set(checkout["actions"]) == {"purge"}

    refund = ok(url, f"/api/invocations/{ids['refund']}")
    assert refund["outcome"] == "failed" and refund["result"] == {
        "type": "failure", "code": 409, "message": "no refunds for tea", "cause": "error"}

    signup = ok(url, f"/api/invocations/{ids['signup']}")
    assert any(w["kind"] == "promise" and w["name"] == "confirmed" for w in signup["waits"]), signup["waits"]
    assert set(signup["actions"]) >= {"cancel", "kill"}

    long = ok(url, f"/api/invocations/{ids['long']}?journal_limit=100")
    assert long["journal_length"] == LONG_JOURNAL + 1 and len(long["journal"]) == 100 and long["journal_next"] == 100
    tail = ok(url, f"/api/invocations/{ids['long']}/journal?from={LONG_JOURNAL - 50}&limit=100")
    assert [e["index"] for e in tail["entries"]] == list(range(LONG_JOURNAL - 50, LONG_JOURNAL + 1))
    assert tail["next"] is None and tail["entries"][0]["since_previous_ms"] is not None
    assert tail["entries"][-1]["kind"] == "output"
    assert ok(url, f"/api/invocations/{ids['long']}/journal/7")["name"] == "s7"


def test_state_of_an_object_and_promises_of_a_workflow(seeded: Seeded) -> None:
    url = seeded.url
    keyed = {s["name"]: s["kind"] for s in ok(url, "/api/state")["services"]}
    assert keyed == {"cart": "virtual_object", "signup": "workflow"}
    assert set(ok(url, "/api/state/cart/keys?tenant=a")["keys"]) == {"alice", "bob"}
    assert ok(url, "/api/state/cart/keys?tenant=b")["keys"] == ["alice"]  # b's checkout added to b's own cart
    page = ok(url, "/api/state/cart/keys?tenant=a&limit=1")
    rest = ok(url, f"/api/state/cart/keys?tenant=a&limit=1&page={urllib.parse.quote(page['next_page'])}")
    assert sorted(page["keys"] + rest["keys"]) == ["alice", "bob"] and rest["next_page"] is None
    alice = ok(url, "/api/state/cart/keys/alice", KEYS["a"])
    assert {s["name"]: s["value"]["text"] for s in alice["state"]}["items"] == '["tea"]'
    assert ok(url, "/api/state/cart/keys/alice", KEYS["b"])["state"][0]["value"]["text"] == '["coffee"]'

    signup = ok(url, "/api/state/signup/keys/ada", KEYS["a"])
    assert {s["name"] for s in signup["state"]} == {"email"}
    assert [(p["name"], p["resolved"]) for p in signup["promises"]] == [("confirmed", False)]
    assert ok(url, "/api/state/signup/keys?tenant=a")["keys"] == ["ada"]
    assert ok(url, "/api/state/signup/keys/ada", KEYS["b"])["promises"] == []  # another tenant's workflow


def test_tenants_limits_and_cluster(seeded: Seeded) -> None:
    url = seeded.url
    tenants = {t["name"]: t for t in ok(url, "/api/tenants")["tenants"]}
    assert set(tenants) == {"a", "b"}
    today = tenants["a"]["usage"][-1]
    assert today["counters"].get("invocations", 0) >= 5 and len(tenants["a"]["usage"]) == 14
    changed = ok(url, "/api/limits", method="POST", body={"tenant": "b", "max_running": 7, "rate_per_s": "2.5"})
    assert {t["name"]: t for t in changed["tenants"]}["b"]["limits"]["max_running"] == 7
    assert get_limits(seeded.cluster).tenants["b"].max_running == 7  # the admin API's own limits
    assert call(url, "/api/limits", method="POST", body={"tenant": "b", "max_running": 0})[0] == 400
    ok(url, "/api/limits", method="POST", body={"tenant": "b", "clear": True})
    assert not get_limits(seeded.cluster).tenants["b"].HasField("max_running")

    cluster = ok(url, "/api/cluster")
    assert [p["partition"] for p in cluster["partitions"]] == [0, 1]
    assert all(p["leader"] and p["leader_epoch"] >= 1 and p["apply_lag"] is not None for p in cluster["partitions"])
    assert [(n["node"], n["health"]) for n in cluster["nodes"]] == [(0, "ok")]
    services = ok(url, "/api/services")
    shop = next(s for s in services["services"] if s["name"] == "shop")
    assert {h["name"] for h in shop["handlers"]} >= {"checkout", "refund", "nap", "gated"}
    assert '"item"' in next(h for h in shop["handlers"] if h["name"] == "checkout")["input_schema"]
    assert shop["workers"] and shop["workers"][0]["concurrency"] == 64
    (deployment,) = services["deployments"]
    assert deployment["in_flight"] >= 1  # the signup workflow waits on its promise


def test_with_two_node_processes_the_console_of_node_0_shows_every_partition(tmp_path: Path) -> None:
    cluster = start(tmp_path, processes=2)
    try:
        url = f"http://{cluster.console}"

        async def seed() -> list[str]:
            async with Client(cluster.ingress, api_key=KEYS["a"]) as a:
                return [await a.send("cart/cart_add", f"item-{k}", key=k) for k in ("k1", "k2", "k3", "k4", "k5")]

        made = asyncio.run(seed())
        partitions = {i["partition"] for i in listed(url, "limit=500") if i["id"] in made}
        assert partitions == {0, 1}  # five keys: both partitions (and so both nodes) hold some
        assert {i["id"] for i in listed(url, "limit=500", token=KEYS["a"])} >= set(made)
        for inv in made:  # each one's owner is asked through the Partition interface
            assert ok(url, f"/api/invocations/{inv}", KEYS["a"])["tenant"] == "a"
        nodes = ok(url, "/api/cluster")["nodes"]
        assert [(n["node"], n["health"]) for n in nodes] == [(0, "ok"), (1, "ok")]
        assert [t["name"] for t in ok(url, "/api/tenants", KEYS["a"])["tenants"]] == ["a"]  # limits of every node
        assert ok(url, "/api/deployments")["deployments"]
    finally:
        cluster.stop()


# ---------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("console-screenshots")
    yield folder
    if any(folder.iterdir()):  # printed past pytest's capture: where to look, even when every test passed
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            print(f"\nconsole screenshots: {folder}", flush=True)


def screenshot(page: Any, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("ENDURE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / path.name)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Any, url: str, token: str, path: str = "/invocations") -> None:
    page.goto(url + path)
    assert "/login" in page.url  # not signed in: the page asks
    page.fill("input[name=token]", token)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"**{path}*")


def test_list_filter_detail_and_timeline_in_a_browser(seeded: Seeded, page: Any, shots: Path) -> None:
    url, ids = seeded.url, seeded.ids
    sign_in(page, url, ADMIN)
    assert page.inner_text("[data-testid=who]") == "admin"
    rows = page.locator("table[data-testid=invocations] tbody tr")
    assert rows.count() >= 5
    screenshot(page, shots, "invocations")

    page.fill("form[data-testid=filters] input[name=service]", "shop")
    page.fill("form[data-testid=filters] input[name=handler]", "checkout")
    page.click("form[data-testid=filters] button[type=submit]")
    page.wait_for_url("**handler=checkout**")
    assert "service=shop" in page.url  # the filters live in the URL
    targets = rows.locator("td:nth-child(2)").all_inner_texts()
    assert targets and all(t.startswith("shop/checkout") for t in targets)

    page.click(f"a[href='/invocations/{ids['checkout']}']")
    page.wait_for_url(f"**/invocations/{ids['checkout']}")
    assert page.inner_text("[data-testid=invocation-id]") == ids["checkout"]
    assert "completed" in page.inner_text("#inv-header [data-testid=status]")
    entries = page.locator("#journal li.entry")
    assert entries.count() == 5
    assert [k.strip().lower() for k in entries.locator(".kind").all_inner_texts()] == [
        "run", "sleep", "run", "call", "output"]
    assert '"paid 6 for tea"' in entries.nth(4).inner_text()
    assert entries.nth(1).locator(".delta").inner_text().startswith("+")  # time since the entry before
    screenshot(page, shots, "invocation")
    entries.nth(3).locator("a.mono").click()  # the child call's own page
    page.wait_for_selector("#inv-header")
    assert "cart/cart_add" in page.inner_text("#inv-header .target-line")


def test_cancel_from_the_page_ends_the_invocation_cancelled(seeded: Seeded, page: Any) -> None:
    async def nap() -> str:
        async with Client(seeded.cluster.ingress, api_key=KEYS["a"]) as a:
            return await a.send("shop/nap", "to cancel")

    inv = seeded.run(nap())
    wait_until(lambda: any(w["kind"] == "timer" for w in ok(seeded.url, f"/api/invocations/{inv}")["waits"]),
               what="the nap to sleep")
    sign_in(page, seeded.url, KEYS["a"], f"/invocations/{inv}")
    assert "timer" in page.inner_text("[data-testid=waits]")
    page.click("[data-testid=action-cancel]")
    assert page.is_visible("dialog#confirm")
    page.click("#confirm-ok")
    wait_until(lambda: ok(seeded.url, f"/api/invocations/{inv}")["status"] == "cancelled", 30, "the cancel")
    page.wait_for_selector("#inv-header[data-final=true]")  # the page follows without a reload
    assert "cancelled" in page.inner_text("#inv-header [data-testid=status]")


def test_a_running_invocation_updates_live_without_a_reload(seeded: Seeded, page: Any, shots: Path) -> None:
    async def gated() -> str:
        async with Client(seeded.cluster.ingress, api_key=KEYS["a"]) as a:
            return await a.send("shop/gated", "live")

    inv = seeded.run(gated())
    sign_in(page, seeded.url, ADMIN, f"/invocations/{inv}")
    page.wait_for_selector("#journal li.entry[data-index='0']")
    page.wait_for_function("() => document.querySelector('#streams pre')?.textContent.includes('thinking about live')")
    page.evaluate("() => { window.sameDocument = true; }")
    screenshot(page, shots, "invocation-live")
    (seeded.cluster.root / "gate-live").touch()
    page.wait_for_selector("#journal li.entry .name:text-is('after gate')")
    page.wait_for_selector("#inv-header[data-final=true]")
    assert "live finished" in page.inner_text("[data-testid=result]")
    page.wait_for_function("() => document.querySelector('#streams pre').textContent.includes('done.')")
    assert page.evaluate("() => window.sameDocument") is True  # updated in place, never reloaded


def test_a_tenant_key_sees_only_its_own_invocations_in_a_browser(seeded: Seeded, page: Any) -> None:
    sign_in(page, seeded.url, KEYS["b"])
    assert page.inner_text("[data-testid=who]") == "tenant b"
    tenants = page.locator("table[data-testid=invocations] tbody tr td:nth-child(4)").all_inner_texts()
    assert tenants and set(tenants) == {"b"}
    assert page.locator("header nav a", has_text="Cluster").count() == 0
    response = page.goto(f"{seeded.url}/invocations/{seeded.ids['checkout']}")  # tenant a's
    assert response is not None and response.status == 404


def test_a_long_journal_loads_in_pages_and_the_other_pages_render(seeded: Seeded, page: Any, shots: Path) -> None:
    url = seeded.url
    sign_in(page, url, ADMIN, f"/invocations/{seeded.ids['long']}")
    entries = page.locator("#journal li.entry")
    assert entries.count() == 200  # the first page only: 10,001 entries never render at once
    assert page.inner_text("#journal-count") == f"200 of {LONG_JOURNAL + 1} shown"
    page.locator("#journal-more").scroll_into_view_if_needed()  # the next page loads as it comes into view
    page.wait_for_function("() => document.querySelectorAll('#journal li.entry').length >= 400")

    page.goto(url + "/services")
    assert page.locator("section.service[data-service=shop]").count() == 1
    assert int(page.inner_text("[data-testid=in-flight]")) >= 1
    screenshot(page, shots, "services")
    page.goto(url + "/state?service=signup&key=ada&tenant=a")
    assert "confirmed" in page.inner_text("[data-testid=promises]")
    assert "ada@example.com" in page.inner_text("[data-testid=state]")
    screenshot(page, shots, "state")
    page.goto(url + "/cluster")
    assert page.locator("table[data-testid=partitions] tbody tr").count() == 2
    screenshot(page, shots, "cluster")

    page.goto(url + "/tenants")
    assert page.locator("section.tenant[data-tenant=a] svg[data-testid=usage-chart] rect").count() == 14
    form = page.locator("form.limits[data-tenant=a]")
    form.locator("input[name=max_backlog]").fill("500")
    with page.expect_navigation():  # saved, then reloaded with what is stored
        form.locator("button[type=submit]").click()
    assert get_limits(seeded.cluster).tenants["a"].max_backlog == 500
    assert page.locator("form.limits[data-tenant=a] input[name=max_backlog]").input_value() == "500"
    screenshot(page, shots, "tenants")
