// The operators' console: queues (live), dead letters with replay, the moderation log with
// filters, tenants with their balance and a credit grant form. Staff-only API calls.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, credits, bytes, when, duration } = faktry;
  const status = $("#admin-status");

  // A filtered, paginated list: filters come from the form's fields, rows from render().
  function listing({ form, table, path, render, empty }) {
    const body = $(`${table} tbody`);
    const more = $("#more");
    let cursor = null;
    let generation = 0; // a new search makes answers to the old one stale
    async function load(reset) {
      const params = new URLSearchParams({ limit: "50" });
      for (const [name, value] of new FormData(form)) if (String(value).trim()) params.set(name, String(value).trim());
      if (reset) {
        cursor = null;
        generation += 1;
      }
      const asked = generation;
      if (cursor) params.set("cursor", cursor);
      more.disabled = true;
      try {
        const page = await api("GET", `${path}?${params}`);
        if (asked !== generation) return;
        if (reset) fill(body);
        page.data.forEach((item) => body.append(render(item)));
        cursor = page.next_cursor;
        more.hidden = !cursor;
        say(status, body.children.length ? "" : empty);
      } catch (err) {
        showError(status, err);
      } finally {
        more.disabled = false;
      }
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      load(true);
    });
    more.addEventListener("click", () => load(false));
    load(true);
    return load;
  }

  const queues = $("#queues");
  if (queues) {
    faktry.poll(async () => {
      try {
        const list = await api("GET", "/v1/admin/queues");
        fill($("#queues tbody"), list.data.map((q) => h("tr", { dataset: { queue: q.queue } },
          h("th", { scope: "row" }, q.queue),
          h("td", {}, q.depth), h("td", {}, q.delayed), h("td", {}, duration(q.oldest_age_seconds)),
          h("td", {}, q.running), h("td", {}, q.throughput_per_minute),
          h("td", {}, q.avg_duration_seconds === null ? "–" : `${q.avg_duration_seconds} s`),
          h("td", { class: q.scaling_hint.workers_needed > 0 ? "hint" : "" }, q.scaling_hint.workers_needed))));
        if (list.data.length) $("#drain-target").textContent = duration(list.data[0].scaling_hint.drain_target_seconds);
        $("#updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
        say(status, "");
      } catch (err) {
        showError(status, err);
      }
    }, Math.max(faktry.pollMs(), 2000));
    return;
  }

  if ($("#dead-letters")) {
    listing({
      form: $("#dead-filters"), table: "#dead-letters", path: "/v1/admin/dead-letters", empty: "No failed jobs.",
      render: (job) => {
        const replay = h("button", { type: "button", class: "small", "aria-label": `Replay ${job.id}` }, "Replay");
        replay.addEventListener("click", async () => {
          replay.disabled = true;
          try {
            const copy = await api("POST", `/v1/admin/jobs/${encodeURIComponent(job.id)}/replay`);
            say(status, `Replayed ${job.id} as ${copy.id}.`, "ok");
            replay.replaceWith(h("span", {}, `replayed as ${copy.id}`));
          } catch (err) {
            showError(status, err);
            replay.disabled = false;
          }
        });
        return h("tr", { dataset: { jobId: job.id } },
          h("td", {}, h("code", {}, job.id)), h("td", {}, h("code", {}, job.tenant_id)), h("td", {}, job.type),
          h("td", {}, job.error ? `${job.error.code}: ${job.error.message || ""}` : ""),
          h("td", {}, when(job.finished_at)), h("td", {}, replay));
      },
    });
  }

  if ($("#moderation")) {
    listing({
      form: $("#moderation-filters"), table: "#moderation", path: "/v1/admin/moderation", empty: "Nothing matches.",
      render: (e) => h("tr", { dataset: { action: e.action } },
        h("td", {}, when(e.at)), h("td", {}, h("code", {}, e.tenant_id)), h("td", {}, e.action),
        h("td", {}, e.category), h("td", {}, Number(e.score).toFixed(2)), h("td", {}, e.source),
        h("td", {}, e.model || ""), h("td", { class: "prompt" }, e.prompt), h("td", {}, e.reason || "")),
    });
  }

  if ($("#tenants")) {
    listing({
      form: $("#tenant-filters"), table: "#tenants", path: "/v1/admin/tenants", empty: "No tenants match.",
      render: (t) => {
        const cells = {
          available: h("td", {}, credits(t.credits.available)),
          held: h("td", {}, credits(t.credits.held)),
          debt: h("td", {}, credits(t.credits.debt)),
        };
        const amountId = `grant-${t.id}`;
        const reasonId = `reason-${t.id}`;
        const note = h("span", { role: "status", class: "message", hidden: true });
        const form = h("form", { class: "grant", "aria-label": `Grant credits to ${t.owner_email || t.id}` },
          h("label", { for: amountId, class: "visually-hidden" }, "Credits"),
          h("input", { id: amountId, name: "credits", type: "number", min: "0.001", step: "any", required: true, placeholder: "credits", inputmode: "decimal" }),
          h("label", { for: reasonId, class: "visually-hidden" }, "Reason"),
          h("input", { id: reasonId, name: "reason", required: true, maxlength: 200, placeholder: "reason" }),
          h("button", { type: "submit", class: "small" }, "Grant"), note);
        // One key per filled-in form: a double click or a retry after a lost answer grants once.
        let grantKey = null;
        form.addEventListener("input", () => {
          grantKey = null;
        });
        faktry.jsonForm(form, {
          path: `/v1/admin/tenants/${encodeURIComponent(t.id)}/credits`,
          status: note,
          headers: () => ({ "Idempotency-Key": (grantKey = grantKey || faktry.uid()) }),
          collect: (f) => ({ credits: Number(f.credits.value), reason: f.reason.value.trim() }),
          done: (grant) => {
            cells.available.textContent = credits(grant.credits.available);
            cells.held.textContent = credits(grant.credits.held);
            cells.debt.textContent = credits(grant.credits.debt);
            say(note, grant.lot ? "Granted." : "Already granted.", "ok");
            grantKey = null;
            form.reset();
          },
        });
        return h("tr", { dataset: { tenantId: t.id } },
          h("td", {}, t.name, h("br"), h("code", {}, t.id)), h("td", {}, t.owner_email || "—"), h("td", {}, t.tier),
          cells.available, cells.held, cells.debt,
          h("td", {}, `${bytes(t.storage.used_bytes)} of ${bytes(t.storage.quota_bytes)}`), h("td", {}, form));
      },
    });
  }
});
