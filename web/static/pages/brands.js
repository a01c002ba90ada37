// The brands list: each brand with its palette, and a form that creates a brand and opens it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, say, showError, when, jsonForm } = faktry;
  const list = $("#brands");
  const status = $("#brands-status");
  const more = $("#more");
  let cursor = null;

  function chip(color, role) {
    const el = h("span", { class: "brand-chip", title: `${role}: ${color || "not set"}` });
    if (color) el.style.backgroundColor = color;  // CSSOM: allowed by the Content-Security-Policy
    return el;
  }

  function item(brand) {
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete ${brand.name}` }, "Delete");
    const li = h("li", { class: "card", dataset: { brandId: brand.id } },
      h("h3", {}, h("a", { href: `/brands/${encodeURIComponent(brand.id)}` }, brand.name)),
      brand.tagline ? h("p", {}, brand.tagline) : null,
      h("p", { class: "brand-chips", "aria-hidden": "true" },
        ["primary", "secondary", "accent"].map((role) => chip(brand.colors[role], role))),
      h("p", { class: "help" }, `Updated ${when(brand.updated_at)}`),
      remove);
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete the brand ${brand.name}? Its library files stay.`)) return;
      remove.disabled = true;
      try {
        await api("DELETE", `/v1/brands/${encodeURIComponent(brand.id)}`);
        li.remove();
        say(status, `Deleted ${brand.name}.`);
        status.focus();
        $("#brands-empty").hidden = list.children.length > 0;
      } catch (err) {
        showError(status, err);
        remove.disabled = false;
      }
    });
    return li;
  }

  async function load(next) {
    const params = new URLSearchParams({ limit: "25" });
    if (next) params.set("cursor", next);
    const page = await api("GET", `/v1/brands?${params}`);
    page.data.forEach((b) => list.append(item(b)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    $("#brands-empty").hidden = list.children.length > 0;
  }

  jsonForm($("#new-brand"), {
    path: "/v1/brands",
    collect: (form) => ({ name: form.elements.name.value }),
    done: (brand) => location.assign(`/brands/${encodeURIComponent(brand.id)}`),
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load(cursor);
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  });
  load(null).catch((err) => showError(status, err));
});
