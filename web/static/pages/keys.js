// API keys: create (the key is shown once, with a copy button), list, revoke.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when } = faktry;
  const body = $("#keys tbody");
  const status = $("#keys-status");

  function row(key) {
    const revoked = Boolean(key.revoked_at);
    const revoke = h("button", { type: "button", class: "secondary small", "aria-label": `Revoke ${key.name || key.prefix}` }, "Revoke");
    revoke.addEventListener("click", async () => {
      if (!confirm(`Revoke ${key.name || key.prefix}? Programs using it stop working at once.`)) return;
      revoke.disabled = true;
      try {
        const updated = await api("DELETE", `/v1/keys/${encodeURIComponent(key.id)}`);
        tr.replaceWith(row(updated));
        say(status, `Revoked ${key.name || key.prefix}.`);
        status.focus(); // the button is gone: keep the keyboard where the news is
      } catch (err) {
        showError(status, err);
        revoke.disabled = false;
      }
    });
    const tr = h("tr", { dataset: { keyId: key.id, revoked: String(revoked) } },
      h("td", {}, key.name || "—"),
      h("td", {}, h("code", {}, `${key.prefix}…`)),
      h("td", {}, when(key.created_at)),
      h("td", {}, key.last_used_at ? when(key.last_used_at) : "never"),
      h("td", {}, revoked ? `revoked ${when(key.revoked_at)}` : "active"),
      h("td", {}, revoked ? "" : revoke));
    return tr;
  }

  async function load() {
    const list = await api("GET", "/v1/keys");
    fill(body, list.data.map(row));
    say(status, list.data.length ? "" : "No keys yet.");
  }

  const form = $("#key-form");
  faktry.jsonForm(form, {
    path: "/v1/keys",
    collect: (f) => ({ name: f.name.value.trim() }),
    done: async (key) => {
      $("#new-key").hidden = false;
      const value = $("#new-key-value");
      value.value = key.key;
      value.focus();
      value.select();
      form.reset();
      await load();
    },
  });

  $("#copy-key").addEventListener("click", async () => {
    const value = $("#new-key-value");
    try {
      await navigator.clipboard.writeText(value.value);
    } catch (err) {
      // Without clipboard access (plain http, older browsers): select it for Ctrl+C.
      value.select();
      document.execCommand("copy");
    }
    say($("#copy-status"), "Copied to the clipboard.", "ok");
  });

  load().catch((err) => showError(status, err));
});
