// Credits: the balance, the lots with their expiry, the ledger's history, and credit packs
// bought through Stripe Checkout (the API answers with the checkout URL to go to). The
// billing return pages use the balance part.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, credits, when } = faktry;

  async function balance() {
    const account = await api("GET", "/v1/account");
    const c = account.credits;
    $("#available").textContent = credits(c.available);
    const detail = $("#balance-detail");
    if (detail) {
      const parts = [];
      if (c.held) parts.push(`${credits(c.held)} held by running jobs`);
      if (c.debt) parts.push(`${credits(c.debt)} owed after a refund; new jobs wait until it is paid`);
      detail.textContent = parts.join("; ");
    }
    const lots = $("#lots tbody");
    if (lots) {
      fill(lots, c.lots.map((lot) => h("tr", {},
        h("td", {}, lot.source), h("td", {}, credits(lot.amount)), h("td", {}, credits(lot.remaining)),
        h("td", {}, credits(lot.held)), h("td", {}, when(lot.created_at)), h("td", {}, when(lot.expires_at)))));
      if (!c.lots.length) lots.append(h("tr", {}, h("td", { colspan: 6 }, "No credits yet.")));
    }
    return account;
  }

  // After Stripe: the webhook adds the credits a moment later; watch the balance for a while.
  if ($("#billing-return")?.dataset.outcome === "success") {
    let rounds = 0;
    faktry.poll(async () => {
      await balance();
      rounds += 1;
      return rounds < 30;
    }, Math.max(faktry.pollMs(), 2000));
    return;
  }
  if (!$("#packs")) return;

  async function packs() {
    const status = $("#packs-status");
    try {
      const list = await api("GET", "/v1/billing/packs");
      fill($("#packs"), list.data.map((pack) => {
        const buy = h("button", { type: "button" }, `Buy for ${(pack.amount / 100).toLocaleString(undefined, { style: "currency", currency: pack.currency.toUpperCase() })}`);
        buy.addEventListener("click", async () => {
          buy.disabled = true;
          say(status, "Opening the secure checkout…");
          try {
            const checkout = await api("POST", "/v1/billing/checkout", { pack: pack.id });
            location.assign(checkout.url);
          } catch (err) {
            showError(status, err);
            buy.disabled = false;
          }
        });
        return h("li", { class: "card", dataset: { pack: pack.id } },
          h("h3", {}, pack.name), h("p", { class: "big" }, `${credits(pack.credits * 1000)} credits`), buy);
      }));
    } catch (err) {
      showError(status, err);
    }
  }

  const history = $("#transactions tbody");
  const more = $("#more");
  let cursor = null;
  async function transactions() {
    const params = new URLSearchParams({ limit: "50" });
    if (cursor) params.set("cursor", cursor);
    more.disabled = true;
    const page = await api("GET", `/v1/account/transactions?${params}`).finally(() => {
      more.disabled = false;
    });
    page.data.forEach((t) => history.append(h("tr", {},
      h("td", {}, when(t.created_at)), h("td", {}, t.kind), h("td", {}, credits(t.available)),
      h("td", {}, credits(t.held)),
      h("td", {}, t.job_id ? h("a", { href: `/jobs/${encodeURIComponent(t.job_id)}` }, t.job_id) : ""),
      h("td", {}, t.memo || ""))));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => transactions().catch((err) => showError($("#packs-status"), err)));

  balance().catch((err) => showError($("#packs-status"), err));
  packs();
  transactions().catch((err) => showError($("#packs-status"), err));
});
