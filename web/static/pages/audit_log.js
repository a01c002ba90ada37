// The audit log: the account's security events, newest first, filtered by event and person.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, showError, when } = faktry;
  const form = $("#audit-filters");
  const body = $("#audit tbody");
  const more = $("#more");
  const empty = $("#audit-empty");
  const status = $("#audit-status");
  let cursor = null;

  function about(entry) {
    const data = entry.data || {};
    const parts = [entry.target, data.email, data.name, data.from && `${data.from} → ${data.to}`,
      data.reason, data.form].filter(Boolean);
    return parts.join(" · ");
  }

  function row(entry) {
    const who = entry.actor.staff ? "faktry staff" : (entry.actor.email || (entry.data || {}).email || "—");
    return h("tr", { dataset: { action: entry.action } },
      h("td", {}, when(entry.at)), h("td", {}, entry.action.replaceAll("_", " ")), h("td", {}, who),
      h("td", {}, entry.via.replace("_", " ")), h("td", { class: "prompt" }, about(entry)),
      h("td", {}, entry.address || ""));
  }

  async function load(next) {
    const params = new URLSearchParams({ limit: "50" });
    for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
    if (next) params.set("cursor", next);
    const page = await api("GET", `/v1/audit-log?${params}`);
    if (!next) fill(body);
    page.data.forEach((entry) => body.append(row(entry)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    empty.hidden = body.children.length > 0;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(null).catch((err) => showError(status, err));
  });
  more.addEventListener("click", () => load(cursor).catch((err) => showError(status, err)));
  load(null).catch((err) => showError(status, err));
});
