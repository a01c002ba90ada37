// One brand's editor: every part of the brand as a form, a live preview of its palette and
// fonts, logo and mood images picked from the library, and saving through PATCH /v1/brands.
// A refused field is marked where it is: inputs are named by the API's field paths
// ("colors.primary", "personas.1.name"), so the error's field finds its input.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError } = faktry;
  const editor = $("#brand-editor");
  const brandId = editor.dataset.brandId;
  const path = `/v1/brands/${encodeURIComponent(brandId)}`;
  const form = $("#brand-form");
  const status = $("#save-status");
  const alertBox = $("#brand-status");
  const ROLES = ["primary", "secondary", "accent"];
  const HEX = /^#[0-9a-fA-F]{6}$/;
  let images = [];

  const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);
  const field = (name) => form.querySelector(`[name="${CSS.escape(name)}"]`);
  // A family as CSS takes it, with a generic fallback (the schema keeps names quote-free).
  const stack = (family, generic) => (family ? `"${family}", ${generic}` : generic);

  // -- font pairings and personas: lists of small fieldsets -----------------------------------

  function pairingItem(pairing = { heading: "", body: "", use: "" }) {
    const li = h("li", { class: "brand-item" });
    const parts = [["heading", "Pairing heading font", pairing.heading], ["body", "Pairing body font", pairing.body],
      ["use", "Used for", pairing.use || ""]];
    for (const [key, label, value] of parts) {
      const control = h("input", { dataset: { key }, list: key === "use" ? null : "font-choices", maxlength: 200 });
      control.value = value;
      li.append(h("label", {}, label), control);
    }
    const remove = h("button", { type: "button", class: "secondary small" }, "Remove pairing");
    li.append(remove);
    remove.addEventListener("click", () => { li.remove(); renumber("#pairings"); preview(); });
    li.renumber = () => {
      const i = [...li.parentNode.children].indexOf(li);
      li.querySelectorAll("[data-key]").forEach((el) => {
        el.name = `typography.pairings.${i}.${el.dataset.key}`;
        el.id = `pairing-${i}-${el.dataset.key}`;
        el.previousElementSibling.htmlFor = el.id;
      });
      remove.setAttribute("aria-label", `Remove pairing ${i + 1}`);
    };
    return li;
  }

  function personaItem(persona = { name: "", role: "", description: "", goals: [], pain_points: [] }) {
    const li = h("li", { class: "brand-item" });
    const parts = [
      ["name", "Persona name", "input", persona.name],
      ["role", "Role", "input", persona.role || ""],
      ["description", "About them", "textarea", persona.description || ""],
      ["goals", "Goals (one a line)", "textarea", (persona.goals || []).join("\n")],
      ["pain_points", "Pain points (one a line)", "textarea", (persona.pain_points || []).join("\n")],
    ];
    for (const [key, label, tag, value] of parts) {
      const control = h(tag, { dataset: { key }, rows: tag === "textarea" ? 2 : null });
      control.value = value;
      li.append(h("label", {}, label), control);
    }
    const remove = h("button", { type: "button", class: "secondary small" }, "Remove persona");
    li.append(remove);
    remove.addEventListener("click", () => { li.remove(); renumber("#personas"); });
    li.renumber = () => {
      const i = [...li.parentNode.children].indexOf(li);
      li.querySelectorAll("[data-key]").forEach((el) => {
        el.name = `personas.${i}.${el.dataset.key}`;
        el.id = `persona-${i}-${el.dataset.key}`;
        el.previousElementSibling.htmlFor = el.id;
      });
      remove.setAttribute("aria-label", `Remove persona ${i + 1}`);
    };
    return li;
  }

  function renumber(selector) {
    [...$(selector).children].forEach((li) => li.renumber());
  }

  function addTo(selector, li) {
    $(selector).append(li);
    renumber(selector);
    return li;
  }

  // -- the preview ----------------------------------------------------------------------------

  function colorOf(role) {
    const value = $(`#hex-${role}`).value.trim();
    return HEX.test(value) ? value.toLowerCase() : null;
  }

  function preview() {
    for (const role of ROLES) {
      const color = colorOf(role);
      const swatch = $(`#swatch-${role}`);
      swatch.dataset.color = color || "";
      swatch.querySelector(".brand-chip").style.backgroundColor = color || "";
      swatch.querySelector(".brand-hex").textContent = `${role[0].toUpperCase()}${role.slice(1)}: ${color || "not set"}`;
    }
    const heading = $("#heading-font").value.trim();
    const body = $("#body-font").value.trim();
    const sample = $("#preview-sample");
    sample.style.backgroundColor = colorOf("secondary") || "";
    $("#preview-heading").textContent = $("#brand-name").value || "Brand name";
    $("#preview-heading").style.fontFamily = stack(heading, "serif");
    $("#preview-heading").style.color = colorOf("primary") || "";
    $("#preview-tagline").textContent = $("#brand-tagline").value;
    $("#preview-tagline").style.fontFamily = stack(body, "sans-serif");
    $("#preview-body").style.fontFamily = stack(body, "sans-serif");
    $("#preview-button").style.backgroundColor = colorOf("accent") || "";
    $("#preview-button").style.fontFamily = stack(body, "sans-serif");
    $("#preview-fonts").textContent = `Headings in ${heading || "the default serif"}, text in ${body || "the default sans-serif"}.`;
    const logo = images.find((f) => f.id === $("#brand-logo").value);
    fill($("#preview-logo"), logo ? h("img", { src: logo.url, alt: `Logo: ${logo.filename || logo.id}`, class: "brand-logo" }) : null);
  }

  for (const role of ROLES) {
    const pick = $(`#pick-${role}`);
    const hex = $(`#hex-${role}`);
    pick.addEventListener("input", () => { hex.value = pick.value; preview(); });
    hex.addEventListener("input", () => { if (HEX.test(hex.value.trim())) pick.value = hex.value.trim().toLowerCase(); preview(); });
  }
  form.addEventListener("input", preview);
  form.addEventListener("change", preview);

  // -- load and save --------------------------------------------------------------------------

  function show(brand) {
    $("#brand-name").value = brand.name;
    $("#brand-tagline").value = brand.tagline;
    $("#brand-description").value = brand.description;
    for (const role of ROLES) {
      const color = brand.colors[role];
      $(`#hex-${role}`).value = color || "";
      $(`#pick-${role}`).value = color || "#000000";
    }
    $("#heading-font").value = brand.typography.heading_font || "";
    $("#body-font").value = brand.typography.body_font || "";
    fill($("#pairings"));
    brand.typography.pairings.forEach((p) => addTo("#pairings", pairingItem(p)));
    $("#voice-mission").value = brand.voice.mission;
    $("#voice-vision").value = brand.voice.vision;
    $("#voice-values").value = brand.voice.values.join("\n");
    $("#voice-personality").value = brand.voice.personality;
    $("#brand-audience").value = brand.audience;
    fill($("#personas"));
    brand.personas.forEach((p) => addTo("#personas", personaItem(p)));
    $("#design-notes").value = brand.design_notes;
    libraryPickers(brand);
    $("#brand-title").textContent = `Brand ${brand.name}`;
    preview();
  }

  function libraryPickers(brand) {
    const logo = $("#brand-logo");
    fill(logo, h("option", { value: "" }, "No logo"),
      images.map((f) => h("option", { value: f.id }, f.filename || f.id)));
    if (brand.logo_file_id && !images.some((f) => f.id === brand.logo_file_id)) {
      logo.append(h("option", { value: brand.logo_file_id }, "A file no longer in the library"));
    }
    logo.value = brand.logo_file_id || "";
    const chosen = new Set(brand.mood_file_ids);
    fill($("#mood"), images.map((f, i) => h("li", { class: "brand-mood-item" },
      h("input", { type: "checkbox", id: `mood-${i}`, value: f.id, checked: chosen.has(f.id), dataset: { mood: "" } }),
      h("label", { for: `mood-${i}` }, h("img", { src: f.url, alt: "", class: "thumb", loading: "lazy" }), f.filename || f.id))));
    // Ids the library no longer has stay chosen (hidden) until the person saves without them.
    brand.mood_file_ids.filter((id) => !images.some((f) => f.id === id)).forEach((id) =>
      $("#mood").append(h("li", { hidden: true }, h("input", { type: "checkbox", value: id, checked: true, dataset: { mood: "" }, "aria-label": "A file no longer in the library" }))));
    $("#mood-empty").hidden = images.length > 0;
  }

  function collect() {
    const colors = Object.fromEntries(ROLES.map((role) => [role, $(`#hex-${role}`).value.trim() || null]));
    const keyed = (li) => Object.fromEntries([...li.querySelectorAll("[data-key]")].map((el) => [el.dataset.key, el.value]));
    return {
      name: $("#brand-name").value,
      tagline: $("#brand-tagline").value,
      description: $("#brand-description").value,
      logo_file_id: $("#brand-logo").value || null,
      colors,
      typography: {
        heading_font: $("#heading-font").value.trim() || null,
        body_font: $("#body-font").value.trim() || null,
        pairings: [...$("#pairings").children].map((li) => {
          const p = keyed(li);
          return { heading: p.heading.trim(), body: p.body.trim(), use: p.use };
        }),
      },
      voice: {
        mission: $("#voice-mission").value,
        vision: $("#voice-vision").value,
        values: lines($("#voice-values").value),
        personality: $("#voice-personality").value,
      },
      audience: $("#brand-audience").value,
      personas: [...$("#personas").children].map((li) => {
        const p = keyed(li);
        return { name: p.name, role: p.role, description: p.description, goals: lines(p.goals), pain_points: lines(p.pain_points) };
      }),
      mood_file_ids: [...form.querySelectorAll("[data-mood]")].filter((el) => el.checked).map((el) => el.value),
      design_notes: $("#design-notes").value,
    };
  }

  function markField(name) {
    // "voice.values.2" is the values box; "mood_file_ids.1" the mood list.
    const parts = (name || "").split(".");
    while (parts.length) {
      const el = field(parts.join("."));
      if (el) {
        el.setAttribute("aria-invalid", "true");
        el.focus();
        return;
      }
      parts.pop();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("#save");
    button.disabled = true;
    say(status, "");
    say(alertBox, "");
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    try {
      const brand = await api("PATCH", path, collect());
      show(brand);
      say(status, `Saved ${brand.name}.`, "ok");
    } catch (err) {
      showError(alertBox, err);
      markField(err.field);
    } finally {
      button.disabled = false;
    }
  });

  $("#add-pairing").addEventListener("click", () => addTo("#pairings", pairingItem()).querySelector("input").focus());
  $("#add-persona").addEventListener("click", () => addTo("#personas", personaItem()).querySelector("input").focus());
  $("#delete").addEventListener("click", async () => {
    if (!confirm("Delete this brand? Its library files stay.")) return;
    try {
      await api("DELETE", path);
      location.assign("/brands");
    } catch (err) {
      showError(alertBox, err);
    }
  });

  async function load() {
    const [brand, files] = await Promise.all([api("GET", path), api("GET", "/v1/files?kind=image&limit=100")]);
    images = files.data;
    show(brand);
  }
  load().catch((err) => showError(alertBox, err));
});
