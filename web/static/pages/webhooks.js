// Webhooks: add an endpoint (its secret shown), test, turn off/on, rotate, delete; the
// delivery log of one endpoint with each attempt, and redelivery of a message.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when } = faktry;
  const body = $("#hooks tbody");
  const status = $("#hooks-status");
  const base = "/v1/webhook-endpoints";
  let shown = null; // the endpoint whose log is open
  let refresh = null;

  function showSecret(secret) {
    $("#new-secret").hidden = false;
    const value = $("#new-secret-value");
    value.value = secret;
    value.focus();
    value.select();
  }

  function action(label, name, run) {
    const button = h("button", { type: "button", class: "secondary small", "aria-label": `${label} ${name}` }, label);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await run();
      } catch (err) {
        showError(status, err);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function row(hook) {
    const name = hook.description || hook.url;
    const path = `${base}/${encodeURIComponent(hook.id)}`;
    const state = hook.enabled ? "enabled" : `disabled${hook.disabled_reason ? ` (${hook.disabled_reason})` : ""}`;
    return h("tr", { dataset: { hookId: hook.id, enabled: String(hook.enabled) } },
      h("td", {}, h("code", {}, hook.url), hook.description ? h("div", { class: "muted" }, hook.description) : ""),
      h("td", {}, hook.events.length ? hook.events.join(", ") : "all"),
      h("td", {}, state),
      h("td", { class: "actions" },
        action("Send test", name, async () => {
          await api("POST", `${path}/test`);
          say(status, `Test event sent to ${name}.`, "ok");
          await showLog(hook);
        }),
        action("Log", name, () => showLog(hook)),
        action(hook.enabled ? "Disable" : "Enable", name, async () => {
          await api("PATCH", path, { enabled: !hook.enabled });
          say(status, `${hook.enabled ? "Disabled" : "Enabled"} ${name}.`, "ok");
          await load();
        }),
        action("Rotate secret", name, async () => {
          if (!confirm("Make a new secret? The old one keeps signing for one day.")) return;
          const secret = await api("POST", `${path}/rotate-secret`, {});
          showSecret(secret.secret);
        }),
        action("Show secret", name, async () => showSecret((await api("GET", `${path}/secret`)).secret)),
        action("Delete", name, async () => {
          if (!confirm(`Delete ${name} and its delivery log?`)) return;
          await api("DELETE", path);
          if (shown === hook.id) $("#log").hidden = true;
          say(status, `Deleted ${name}.`, "ok");
          await load();
        })));
  }

  function attempts(message) {
    if (!message.log.length) return "none yet";
    return h("ol", { class: "attempts" }, ...message.log.map((a) =>
      h("li", {}, `${when(a.at)}: ${a.status_code ?? a.error} in ${a.latency_ms} ms`,
        a.response_body ? h("code", { class: "muted" }, ` ${a.response_body.slice(0, 80)}`) : "")));
  }

  async function showLog(hook) {
    shown = hook.id;
    const path = `${base}/${encodeURIComponent(hook.id)}`;
    const list = await api("GET", `${path}/messages`);
    $("#log").hidden = false;
    $("#log-for").textContent = `Messages sent to ${hook.url}, newest first.`;
    fill($("#messages tbody"), list.data.map((m) =>
      h("tr", { dataset: { messageId: m.id, status: m.status } },
        h("td", {}, h("code", {}, m.type)),
        h("td", {}, when(m.created_at)),
        h("td", {}, m.status),
        h("td", {}, attempts(m)),
        h("td", {}, action("Send again", m.type, async () => {
          await api("POST", `${path}/messages/${encodeURIComponent(m.id)}/redeliver`);
          say($("#log-status"), `${m.type} will be sent again.`, "ok");
          await showLog(hook);
        })))));
    say($("#log-status"), list.data.length ? "" : "Nothing sent yet.");
    // While a message is on its way, the log follows it.
    clearTimeout(refresh);
    if (list.data.some((m) => m.status === "pending")) {
      refresh = setTimeout(() => shown === hook.id && showLog(hook).catch((err) => showError($("#log-status"), err)), faktry.pollMs());
    }
  }

  async function load() {
    const list = await api("GET", base);
    fill(body, list.data.map(row));
    say(status, list.data.length ? "" : "No endpoints yet.");
  }

  const form = $("#hook-form");
  faktry.jsonForm(form, {
    path: base,
    collect: (f) => ({
      url: f.url.value.trim(),
      description: f.description.value.trim(),
      events: [...f.querySelectorAll("input[name=events]:checked")].map((box) => box.value),
    }),
    done: async (hook) => {
      form.reset();
      await load();
      showSecret(hook.secret);
    },
  });

  load().catch((err) => showError(status, err));
});
