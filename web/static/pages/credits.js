// Credits: the balance, credit packs (bought through Stripe Checkout or, in test mode,
// faktry's own test checkout; the API answers with the URL to go to), the history in plain
// lines, and the lots with their expiry. The billing return pages use the balance part.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when, ApiError } = faktry;
  // Money on pages: credits with two decimals (the API counts millicredits).
  const money = faktry.credits;
  const whole = (n) => n.toLocaleString(undefined, { maximumFractionDigits: 0 });

  async function balance() {
    const account = await api("GET", "/v1/account");
    const c = account.credits;
    $("#available").textContent = money(c.available);
    const detail = $("#balance-detail");
    if (detail) {
      const parts = [];
      if (c.held) parts.push(`${money(c.held)} credits held by running jobs`);
      if (c.debt) parts.push(`${money(c.debt)} credits owed after a refund; new jobs wait until it is paid`);
      detail.textContent = parts.join("; ");
    }
    const lots = $("#lots tbody");
    if (lots) {
      fill(lots, c.lots.map((lot) => h("tr", {},
        h("td", {}, lot.source), h("td", {}, money(lot.amount)), h("td", {}, money(lot.remaining)),
        h("td", {}, money(lot.held)), h("td", {}, when(lot.created_at)), h("td", {}, when(lot.expires_at)))));
      if (!c.lots.length) lots.append(h("tr", {}, h("td", { colspan: 6 }, "No credits yet.")));
    }
    return account;
  }

  const back = $("#billing-return");
  if (back?.dataset.outcome === "success") {
    returned(back).catch((err) => say(back, err instanceof ApiError ? err.message : String(err), "error"));
    return;
  }
  if (!$("#packs")) return;

  // After a checkout: say what became of it; while the payment provider's webhook has not
  // arrived yet, watch for the credits a while.
  async function returned(el) {
    const heading = $("#return-h");
    const session = encodeURIComponent(el.dataset.session);
    let rounds = 0;
    faktry.poll(async () => {
      rounds += 1;
      let state;
      try {
        state = await api("GET", `/v1/billing/checkout/${session}`);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          heading.textContent = "No completed checkout";
          say(el, "We found no checkout with this link for your account, so nothing was charged.", "error");
          el.dataset.state = "unknown";
          await balance();
          return false;
        }
        throw err;
      }
      el.dataset.state = state.status;
      await balance();
      if (state.status === "credited") {
        heading.textContent = "Thank you";
        say(el, `Your payment went through and ${money(state.credits_added)} credits were added.`, "ok");
        return false;
      }
      if (state.status === "paid") {
        heading.textContent = "Thank you";
        say(el, "Your payment went through. The credits are added as soon as the payment processor confirms it, usually within seconds.");
        return rounds < 30;
      }
      heading.textContent = "Checkout not completed";
      say(el, "This checkout was not paid, so nothing was charged and your balance is unchanged.");
      return false;
    }, Math.max(faktry.pollMs(), 2000));
  }

  async function packs() {
    const status = $("#packs-status");
    try {
      const list = await api("GET", "/v1/billing/packs");
      const off = list.payments === "off";
      $("#payments-off").hidden = !off;
      $("#payments-test").hidden = list.payments !== "test";
      const example = list.examples[0];
      if (example) {
        $("#credit-buys").textContent =
          `What a credit buys here: ${whole(1000 / example.millicredits)} ${example.label}` +
          list.examples.slice(1).map((e) => `, or ${whole(1000 / e.millicredits)} ${e.label}`).join("") + ".";
      }
      fill($("#packs"), list.data.map((pack) => {
        const price = (pack.amount / 100).toLocaleString(undefined, { style: "currency", currency: pack.currency.toUpperCase() });
        const buy = h("button", { type: "button" }, `Buy for ${price}`);
        buy.disabled = off;
        if (off) buy.title = "Payments are not set up on this faktry";
        buy.addEventListener("click", async () => {
          buy.disabled = true;
          say(status, list.payments === "test" ? "Opening the test checkout…" : "Opening the secure checkout…");
          try {
            const checkout = await api("POST", "/v1/billing/checkout", { pack: pack.id });
            location.assign(checkout.url);
          } catch (err) {
            showError(status, err);
            buy.disabled = false;
          }
        });
        const buys = example
          ? h("p", { class: "help" }, `About ${whole((pack.credits * 1000) / example.millicredits)} ${example.label}`)
          : "";
        return h("li", { class: "card", dataset: { pack: pack.id } },
          h("h3", {}, pack.name), h("p", { class: "big" }, `${money(pack.credits * 1000)} credits`),
          h("p", {}, price), buys, buy);
      }));
    } catch (err) {
      showError(status, err);
    }
  }

  // One history line: what happened and its credits, never a negative number.
  function line(item) {
    let what = item.description;
    let amount = "";
    if (item.kind === "job") {
      const link = h("a", { href: `/jobs/${encodeURIComponent(item.job_id)}` }, item.description);
      what = h("span", {}, link, ` (${item.job_status})`);
      amount = item.charge === "charged" ? `${money(item.charged)} charged`
        : item.charge === "held" ? `${money(item.held)} held while it runs`
        : "nothing charged";
    } else if (item.added) {
      amount = `${money(item.added)} added`;
    } else if (item.removed) {
      amount = `${money(item.removed)} removed`;
    }
    return h("tr", { dataset: { kind: item.kind, charge: item.charge || "" } },
      h("td", {}, when(item.created_at)), h("td", {}, what), h("td", {}, amount));
  }

  const history = $("#history tbody");
  const more = $("#more");
  let cursor = null;
  async function lines() {
    const params = new URLSearchParams({ limit: "50" });
    if (cursor) params.set("cursor", cursor);
    more.disabled = true;
    const page = await api("GET", `/v1/credits/history?${params}`).finally(() => {
      more.disabled = false;
    });
    page.data.forEach((item) => history.append(line(item)));
    if (!cursor && !page.data.length) history.append(h("tr", {}, h("td", { colspan: 3 }, "Nothing yet.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => lines().catch((err) => showError($("#packs-status"), err)));

  balance().catch((err) => showError($("#packs-status"), err));
  packs();
  lines().catch((err) => showError($("#packs-status"), err));
});
