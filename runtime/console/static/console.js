// Endure web console: the little script the server-rendered pages need, no build step.
// - actions (cancel, kill, pause, resume, purge) after a confirmation dialog
// - the invocation page's live updates: its header and journal are re-fetched (as HTML fragments
//   the server renders) while it runs; its live streams are long-polled from the JSON API
// - journal paging: later pages are fetched as the reader scrolls, so a long journal never
//   renders at once
// - limits forms on the tenants page
"use strict";

const CHANGE = { "X-Endure-Console": "1" };  // the server takes changes made with the cookie only with it
const POLL_MS = 1000;

function flash(text, error) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

async function send(url, body) {
  const response = await fetch(url, {
    method: "POST", headers: { ...CHANGE, "Content-Type": "application/json" },
    body: JSON.stringify(body || {}), credentials: "same-origin",
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
  return answer;
}

function confirmDialog(text) {
  const dialog = document.getElementById("confirm");
  if (!dialog || !dialog.showModal) return Promise.resolve(window.confirm(text));
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// ---------------------------------------------------------------- the invocation page

const Invocation = {
  id: null,
  timer: null,
  streamsStarted: false,

  start() {
    const header = document.getElementById("inv-header");
    if (!header) return;
    this.id = header.dataset.id;
    document.addEventListener("click", (event) => this.onClick(event));
    this.pager();
    this.onHeader(header);
  },

  header() { return document.getElementById("inv-header"); },
  journal() { return document.getElementById("journal"); },

  onHeader(header) {
    if (header.dataset.hasStreams === "true") this.streams();
    if (header.dataset.final !== "true") this.schedule();
  },

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), delay === undefined ? POLL_MS : delay);
  },

  async tick() {
    let final = false;
    try {
      const response = await fetch(`/invocations/${encodeURIComponent(this.id)}/header`, { credentials: "same-origin" });
      if (response.status === 404) { flash("This invocation is gone (purged)."); return; }
      if (!response.ok) throw new Error(response.statusText);
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      const fresh = holder.firstElementChild;
      const old = this.header();
      final = fresh.dataset.final === "true";
      old.replaceWith(fresh);
      await this.refreshJournal(Number(fresh.dataset.journalLength));
      if (fresh.dataset.hasStreams === "true") this.streams();
    } catch (error) {
      console.warn("live update failed", error);
    }
    if (!final) this.schedule();
  },

  // Entries not complete yet (and new ones) are fetched again, but only once every earlier page is
  // loaded: a reader paging through a long journal is not interrupted.
  async refreshJournal(length) {
    const list = this.journal();
    const more = document.getElementById("journal-more");
    if (more) return;
    const items = list.querySelectorAll("li.entry");
    const pending = list.querySelector('li.entry[data-complete="false"]');
    const from = pending ? Number(pending.dataset.index) : items.length;
    if (from >= length && !pending) return;
    const page = await this.fetchPage(from);
    list.querySelectorAll("li.entry").forEach((li) => { if (Number(li.dataset.index) >= from) li.remove(); });
    list.insertAdjacentHTML("beforeend", page.html);
    if (page.next !== "") this.addMore(Number(page.next));
    this.count(page.length);
  },

  async fetchPage(from) {
    const response = await fetch(`/invocations/${encodeURIComponent(this.id)}/journal?from=${from}&limit=200`,
                                 { credentials: "same-origin" });
    if (!response.ok) throw new Error(response.statusText);
    return { html: await response.text(), next: response.headers.get("X-Journal-Next") || "",
             length: Number(response.headers.get("X-Journal-Length")) };
  },

  count(length) {
    const shown = this.journal().querySelectorAll("li.entry").length;
    const counter = document.getElementById("journal-count");
    if (counter) counter.textContent = `${shown} of ${length} shown`;
  },

  addMore(next) {
    const button = document.createElement("button");
    button.type = "button"; button.id = "journal-more"; button.dataset.next = String(next);
    button.dataset.testid = "journal-more"; button.textContent = "Load more entries";
    this.journal().after(button);
    this.pager();
  },

  async loadMore(button) {
    if (button.disabled) return;
    button.disabled = true;
    try {
      const page = await this.fetchPage(Number(button.dataset.next));
      this.journal().insertAdjacentHTML("beforeend", page.html);
      this.count(page.length);
      if (page.next === "") { button.remove(); } else { button.dataset.next = page.next; button.disabled = false; }
    } catch (error) {
      button.disabled = false;
      flash(`Could not load more entries: ${error.message}`, true);
    }
  },

  pager() {  // the next page loads when the button scrolls into view
    const button = document.getElementById("journal-more");
    if (!button || !window.IntersectionObserver) return;
    const observer = new IntersectionObserver((seen) => {
      if (seen.some((e) => e.isIntersecting) && document.body.contains(button)) this.loadMore(button);
      if (!document.body.contains(button)) observer.disconnect();
    }, { rootMargin: "400px" });
    observer.observe(button);
  },

  async onClick(event) {
    const action = event.target.closest("[data-action]");
    if (action) return this.act(action.dataset.action);
    const more = event.target.closest("#journal-more");
    if (more) return this.loadMore(more);
    const full = event.target.closest("[data-full]");
    if (full) return this.loadFull(full);
  },

  async act(action) {
    const words = { cancel: "Cancel it: its compensations run, then it ends as cancelled.",
                    kill: "Kill it: it stops at once, without compensations.", pause: "Pause it.",
                    resume: "Resume it on its pinned deployment.", purge: "Purge it: its status, journal and result are deleted." };
    if (!(await confirmDialog(`${words[action] || action} (${this.id})`))) return;
    try {
      await send(`/api/invocations/${encodeURIComponent(this.id)}/${action}`);
      if (action === "purge") { window.location.assign("/invocations"); return; }
      flash(`${action} requested`);
      this.schedule(0);
    } catch (error) {
      flash(`${action} failed: ${error.message}`, true);
    }
  },

  async loadFull(button) {
    const [id, index] = [button.dataset.full.slice(0, button.dataset.full.lastIndexOf("/")),
                         button.dataset.full.slice(button.dataset.full.lastIndexOf("/") + 1)];
    const response = await fetch(`/api/invocations/${encodeURIComponent(id)}/journal/${index}`, { credentials: "same-origin" });
    const entry = await response.json();
    const value = entry.result && entry.result.type === "value" ? entry.result : entry.value;
    const pre = button.parentElement.querySelector("pre");
    if (pre && value) pre.textContent = value.text;
    button.remove();
  },

  // Live streams: every event after the last seen one, long-polled, until the invocation ends.
  async streams() {
    if (this.streamsStarted) return;
    this.streamsStarted = true;
    const section = document.getElementById("streams");
    section.hidden = false;
    const box = section.querySelector(".streams");
    let after = 0;
    for (;;) {
      let page;
      try {
        const response = await fetch(`/api/invocations/${encodeURIComponent(this.id)}/stream?after=${after}&wait=10`,
                                     { credentials: "same-origin" });
        if (!response.ok) throw new Error(response.statusText);
        page = await response.json();
      } catch (error) {
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      for (const event of page.events) this.render(box, event);
      after = page.after;
      if (page.finished) break;
    }
  },

  render(box, event) {
    let stream = box.querySelector(`[data-stream="${CSS.escape(event.stream)}"]`);
    if (!stream) {
      stream = document.createElement("div");
      stream.className = "stream"; stream.dataset.stream = event.stream;
      const title = document.createElement("h4"); title.textContent = event.stream || "(default)";
      stream.append(title, document.createElement("pre"));
      box.append(stream);
    }
    const pre = stream.querySelector("pre");
    if (event.type === "data") {
      const span = document.createElement("span");
      span.dataset.offset = String(event.offset);
      span.textContent = event.encoding === "json" ? `${event.text}\n` : event.encoding === "base64"
        ? `[${event.text.length} base64 chars]` : event.text;
      if (event.provisional) { span.classList.add("provisional"); span.dataset.step = String(event.step); }
      pre.append(span);
      pre.scrollTop = pre.scrollHeight;
    } else if (event.type === "reset") {
      for (const offset of event.offsets) {
        const span = pre.querySelector(`span[data-offset="${offset}"]`);
        if (span) span.className = "void";
      }
    } else if (event.type === "close") {
      const end = document.createElement("span"); end.className = "closed"; end.textContent = "\n(closed)";
      pre.append(end);
    }
  },
};

// ---------------------------------------------------------------- the tenants page

function limitsForms() {
  document.querySelectorAll("form.limits").forEach((form) => {
    const submit = async (clear) => {
      const body = { tenant: form.dataset.tenant, clear };
      if (!clear) form.querySelectorAll("input").forEach((input) => { if (input.value !== "") body[input.name] = input.value; });
      try {
        await send("/api/limits", body);
        flash(clear ? "limits cleared" : "limits saved");
        setTimeout(() => window.location.reload(), 300);
      } catch (error) {
        flash(`not saved: ${error.message}`, true);
      }
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); submit(false); });
    const clear = form.querySelector("[data-clear-limits]");
    if (clear) clear.addEventListener("click", () => submit(true));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  Invocation.start();
  limitsForms();
});
