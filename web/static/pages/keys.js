// API keys: create (the key is shown once, with a copy button) with its scopes and an
// optional expiry, list, revoke.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when } = faktry;
  const body = $("#keys tbody");
  const status = $("#keys-status");
  // What the person's role may do: the scopes the form offers.
  const roleScopes = [...document.querySelectorAll('#key-scopes [name="scopes"]')].map((c) => c.value);

  // Revoking asks in the row itself: the Revoke button makes way for the question and its
  // two answers; "Keep it" puts the button back, "Yes, revoke" revokes and says so.
  function row(key) {
    const name = key.name || key.prefix;
    const revoked = Boolean(key.revoked_at);
    const actions = h("td", { class: "actions" });
    const revoke = h("button", { type: "button", class: "secondary small", "aria-label": `Revoke ${name}` }, "Revoke");

    function ask() {
      const question = h("p", { class: "confirm-text", id: `revoke-q-${key.id}` },
        `Revoke ${name}? Programs using it stop working at once.`);
      const yes = h("button", { type: "button", class: "danger small", "aria-describedby": question.id }, `Yes, revoke`);
      const keep = h("button", { type: "button", class: "secondary small" }, "Keep it");
      const box = h("div", { class: "confirm", role: "group", "aria-label": `Revoke ${name}?` }, question, yes, keep);
      keep.addEventListener("click", () => {
        fill(actions, revoke);
        revoke.focus();
      });
      yes.addEventListener("click", async () => {
        yes.disabled = true;
        keep.disabled = true;
        try {
          const updated = await api("DELETE", `/v1/keys/${encodeURIComponent(key.id)}`);
          tr.replaceWith(row(updated));
          say(status, `Revoked ${name}. Programs using it can no longer call faktry.`, "ok");
          status.focus(); // the buttons are gone: keep the keyboard where the news is
        } catch (err) {
          showError(status, err);
          fill(actions, revoke);
          revoke.focus();
        }
      });
      fill(actions, box);
      yes.focus();
    }

    revoke.addEventListener("click", ask);
    if (!revoked) actions.append(revoke);
    const tr = h("tr", { dataset: { keyId: key.id, revoked: String(revoked) } },
      h("td", {}, key.name || "—"),
      h("td", {}, h("code", {}, `${key.prefix}…`)),
      h("td", {}, when(key.created_at)),
      h("td", {}, key.last_used_at ? when(key.last_used_at) : "never"),
      h("td", { class: "scopes" }, roleScopes.every((s) => key.scopes.includes(s)) ? "everything your role may do" : key.scopes.join(", ")),
      h("td", {}, revoked ? `revoked ${when(key.revoked_at)}`
        : !key.active ? `expired ${when(key.expires_at)}`
        : key.expires_at ? `active until ${when(key.expires_at)}` : "active"),
      actions);
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
    collect: (f) => {
      const body = { name: f.name.value.trim(), scopes: [...f.querySelectorAll('[name="scopes"]:checked')].map((c) => c.value) };
      if (f.expires.value) body.expires_at = `${f.expires.value}T23:59:59Z`;
      return body;
    },
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
