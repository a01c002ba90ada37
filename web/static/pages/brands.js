// The brands list: each brand with its palette, and a form that creates a brand and opens it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { h, $, when, jsonForm, pagedList, deleteButton } = faktry;
  const list = $("#brands");
  const status = $("#brands-status");
  const more = $("#more");

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
    deleteButton(remove, { question: `Delete the brand ${brand.name}? Its library files stay.`, path: `/v1/brands/${encodeURIComponent(brand.id)}`,
      entry: li, name: brand.name, status, list, empty: $("#brands-empty") });
    return li;
  }

  jsonForm($("#new-brand"), {
    path: "/v1/brands",
    collect: (form) => ({ name: form.elements.name.value }),
    done: (brand) => location.assign(`/brands/${encodeURIComponent(brand.id)}`),
  });
  pagedList({ path: "/v1/brands", list, more, empty: $("#brands-empty"), status, item })();
});
