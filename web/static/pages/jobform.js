// The job form, built from the API's own description: each job type's JSON Schema in
// /v1/openapi.json (input and params), the model catalog in /v1/models for AI jobs, and the
// price from POST /v1/jobs/quote before anything is submitted.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, h, $, fill, say, showError, credits, bytes } = faktry;
  const form = $("#job-form");
  const typeSelect = $("#job-type");
  const modelSelect = $("#model");
  const alert = form.querySelector("[role=alert]");
  const quoteEl = $("#quote");
  let types = {};
  let models = [];
  let files = [];
  let idempotencyKey = null;

  const resolve = (doc, schema) => {
    if (schema && schema.$ref) return resolve(doc, schema.$ref.split("/").slice(1).reduce((o, k) => o[k], doc));
    return schema;
  };

  function label(name) {
    const text = name.replace(/_id$/, "").replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // One form control for one JSON Schema property; the name is "input.x" or "params.x".
  function control(group, name, prop, required) {
    const id = `${group}-${name}`;
    const full = `${group}.${name}`;
    const help = [];
    if (prop.description) help.push(prop.description);
    const common = { id, name: full, "data-group": group, "data-key": name, required: required || null };
    let el;
    if (prop["x-faktry-kinds"]) {
      const kinds = prop["x-faktry-kinds"];
      const options = files.filter((f) => kinds.includes(f.kind));
      // No file is chosen for the person: a wrong one would be paid for.
      el = h("select", common,
        h("option", { value: "" }, required ? "Choose a file…" : "None"),
        options.map((f) => h("option", { value: f.id }, `${f.filename || f.id} (${f.kind}, ${bytes(f.size)})`)));
      if (!options.length) help.push(`Upload a file of kind ${kinds.join(" or ")} in the library first.`);
      const preset = form.dataset.presetFile;
      if (group === "input" && name === "file_id" && preset && options.some((f) => f.id === preset)) el.value = preset;
    } else if (prop.enum) {
      el = h("select", common,
        required || prop.default !== undefined ? null : h("option", { value: "" }, "Default"),
        prop.enum.map((v) => h("option", { value: String(v) }, String(v))));
      if (prop.default !== undefined) el.value = String(prop.default);
      if (prop.type === "integer" || prop.type === "number") el.dataset.type = prop.type;
    } else if (prop.type === "boolean") {
      el = h("input", { ...common, type: "checkbox", checked: prop.default === true });
      return h("div", { class: "check" }, el, h("label", { for: id }, label(name)));
    } else if (prop.type === "integer" || prop.type === "number") {
      el = h("input", {
        ...common, type: "number", inputmode: prop.type === "integer" ? "numeric" : "decimal",
        min: prop.minimum, max: prop.maximum,
        step: prop.multipleOf || (prop.type === "integer" ? 1 : "any"),
        placeholder: prop.default !== undefined ? `default ${prop.default}` : null,
        "data-type": prop.type,
      });
      if (prop.minimum !== undefined || prop.maximum !== undefined) {
        help.push(`From ${prop.minimum ?? "–"} to ${prop.maximum ?? "–"}.`);
      }
    } else if ((prop.maxLength || 0) > 300) {
      el = h("textarea", { ...common, rows: 4, maxlength: prop.maxLength });
    } else {
      el = h("input", { ...common, maxlength: prop.maxLength, pattern: prop.pattern,
        placeholder: prop.default !== undefined ? `default ${prop.default}` : null });
    }
    const helpId = `${id}-help`;
    if (help.length) el.setAttribute("aria-describedby", helpId);
    return h("div", { class: "field" },
      h("label", { for: id }, label(name), required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null),
      el,
      help.length ? h("p", { class: "help", id: helpId }, help.join(" ")) : null);
  }

  function fields(container, group, schema, skip = []) {
    const legend = container.querySelector("legend");
    fill(container, legend);
    const required = schema?.required || [];
    // Required fields first, then the rest in the schema's order.
    const props = Object.entries(schema?.properties || {})
      .filter(([name]) => !skip.includes(name))
      .sort(([a], [b]) => Number(required.includes(b)) - Number(required.includes(a)));
    for (const [name, prop] of props) container.append(control(group, name, prop, required.includes(name)));
    container.hidden = props.length === 0;
  }

  function paramsSchema(type) {
    const schema = types[type].params;
    if (!schema.oneOf) return schema;
    return schema.oneOf.find((variant) => variant.properties.model.const === modelSelect.value) || { properties: {} };
  }

  function renderType() {
    const type = typeSelect.value;
    const spec = types[type];
    $("#job-type-help").textContent = spec.description || "";
    fields($("#input-fields"), "input", spec.input);
    const generative = Boolean(spec.params.oneOf);
    $("#model-field").hidden = !generative;
    if (generative) {
      const choices = models.filter((m) => m.job_types.includes(type));
      const previous = modelSelect.value;
      fill(modelSelect, choices.map((m) => h("option", { value: m.id }, `${m.id} (${m.provider})`)));
      if (choices.some((m) => m.id === previous)) modelSelect.value = previous;
    }
    renderParams();
  }

  function renderParams() {
    const type = typeSelect.value;
    const model = models.find((m) => m.id === modelSelect.value);
    $("#model-help").textContent = model ? model.description : "";
    fields($("#param-fields"), "params", paramsSchema(type), ["model"]);
    requote();
  }

  function body() {
    const out = { type: typeSelect.value, input: {}, params: {} };
    if (!$("#model-field").hidden && modelSelect.value) out.params.model = modelSelect.value;
    for (const el of form.querySelectorAll("[data-group]")) {
      let value;
      if (el.type === "checkbox") value = el.checked;
      else if (el.value === "") continue;
      else if (el.dataset.type === "integer") value = Number.parseInt(el.value, 10);
      else if (el.dataset.type === "number") value = Number(el.value);
      else value = el.value;
      out[el.dataset.group][el.dataset.key] = value;
    }
    return out;
  }

  let quoteTimer = null;
  let quoteSeq = 0;
  function requote() {
    idempotencyKey = null; // a changed form is a new job
    clearTimeout(quoteTimer);
    quoteTimer = setTimeout(async () => {
      const seq = ++quoteSeq;
      try {
        const quote = await api("POST", "/v1/jobs/quote", body());
        if (seq !== quoteSeq) return;
        quoteEl.textContent = `Price: ${credits(quote.price)} credits (you have ${credits(quote.available)})`;
        quoteEl.dataset.kind = quote.sufficient ? "ok" : "error";
        if (!quote.sufficient) quoteEl.textContent += " — not enough credits; buy more under Credits";
      } catch (err) {
        if (seq !== quoteSeq) return;
        quoteEl.textContent = `Price: – (${err.message})`;
        quoteEl.dataset.kind = "info";
      }
    }, 250);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    say(alert, "");
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    // The same key for retries of this form: a double click or a lost answer submits once.
    idempotencyKey = idempotencyKey || faktry.uid();
    try {
      const job = await api("POST", "/v1/jobs", body(), { "Idempotency-Key": idempotencyKey });
      location.assign(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      showError(alert, err);
      const name = err.field && (err.field.includes(".") ? err.field : `params.${err.field}`);
      const el = name && form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (el) {
        el.setAttribute("aria-invalid", "true");
        el.focus();
      }
      button.disabled = false;
    }
  });
  form.addEventListener("input", (event) => {
    if (event.target !== typeSelect && event.target !== modelSelect) requote();
  });
  typeSelect.addEventListener("change", renderType);
  modelSelect.addEventListener("change", renderParams);

  try {
    const [doc, modelList, fileList] = await Promise.all([
      api("GET", "/v1/openapi.json"),
      api("GET", "/v1/models"),
      api("GET", "/v1/files?limit=100"),
    ]);
    models = modelList.data;
    files = fileList.data;
    // "Use in a job" on a file older than the newest 100 still preselects it.
    const wanted = form.dataset.presetFile;
    if (wanted && !files.some((f) => f.id === wanted)) {
      try {
        files.push(await api("GET", `/v1/files/${encodeURIComponent(wanted)}`));
      } catch (err) {
        say(alert, `That file is no longer in your library (${err.message}).`, "error");
      }
    }
    const submission = resolve(doc, doc.components.schemas.JobSubmission);
    for (const ref of submission.oneOf) {
      const schema = resolve(doc, ref);
      const type = schema.properties.type.const;
      types[type] = {
        description: schema.description,
        input: resolve(doc, schema.properties.input),
        params: resolve(doc, schema.properties.params),
      };
    }
    fill(typeSelect, Object.keys(types).map((t) => h("option", { value: t }, t)));
    const preset = files.find((f) => f.id === form.dataset.presetFile);
    if (preset) {
      const first = Object.keys(types).find((t) =>
        Object.values(types[t].input.properties || {}).some((p) => (p["x-faktry-kinds"] || []).includes(preset.kind)));
      if (first) typeSelect.value = first;
    }
    renderType();
  } catch (err) {
    showError(alert, err);
  }
});
