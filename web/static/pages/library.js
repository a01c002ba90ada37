// The media library: storage against the quota, uploads with progress, files with filters.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, bytes, when, preview } = faktry;
  const list = $("#files");
  const status = $("#files-status");
  const more = $("#more");
  let cursor = null;
  let maxUpload = null;

  const MB = 2 ** 20;
  const SIZES = { small: [null, 10 * MB], medium: [10 * MB, 100 * MB], large: [100 * MB, null] };
  let generation = 0; // a changed filter makes answers to the old one stale

  async function refreshStorage() {
    const account = await api("GET", "/v1/account");
    const { used_bytes: used, reserved_bytes: reserved, quota_bytes: quota } = account.storage;
    $("#storage-text").textContent =
      `${bytes(used)} of ${bytes(quota)} used on the ${account.limits.tier} tier` +
      (reserved ? ` (${bytes(reserved)} reserved by running jobs)` : "");
    const bar = $("#storage-bar");
    bar.max = quota || 1;
    bar.value = Math.min(used + reserved, quota);
    maxUpload = account.limits.max_upload_bytes;
    $("#upload-limit").textContent = `Up to ${bytes(maxUpload)} a file on the ${account.limits.tier} tier.`;
  }

  function item(file) {
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete ${file.filename || file.id}` }, "Delete");
    remove.addEventListener("click", async () => {
      if (!confirm(`Delete ${file.filename || file.id}? This cannot be undone.`)) return;
      remove.disabled = true;
      try {
        await api("DELETE", `/v1/files/${encodeURIComponent(file.id)}`);
        li.remove();
        say(status, `Deleted ${file.filename || file.id}.`);
        status.focus(); // the button is gone: keep the keyboard where the news is
        refreshStorage();
      } catch (err) {
        showError(status, err);
        remove.disabled = false;
      }
    });
    const info = file.media || {};
    const facts = [file.kind, bytes(file.total_size || file.size)];
    if (info.width && info.height) facts.push(`${info.width}×${info.height}`);
    if (info.duration) facts.push(`${Number(info.duration).toFixed(1)} s`);
    // An audio player is interactive itself: it cannot sit inside the "open" link.
    const media = file.kind === "audio"
      ? h("div", { class: "tile-media" }, preview(file, { thumb: true }))
      : h("a", { href: file.url, class: "tile-media", "aria-label": `Open ${file.filename || file.id}` }, preview(file, { thumb: true }));
    const li = h("li", { class: "tile", dataset: { fileId: file.id, kind: file.kind } },
      media,
      h("p", { class: "name" }, file.filename || file.name || file.id),
      h("p", { class: "help" }, facts.join(" · "), h("br"), file.origin === "output" ? "output, " : "uploaded ", when(file.created_at)),
      h("div", { class: "actions" },
        h("a", { href: `/jobs/new?file=${encodeURIComponent(file.id)}`, class: "button small" }, "Use in a job"),
        h("a", { href: file.url, download: file.filename || "", class: "button secondary small" }, "Download"),
        remove));
    return li;
  }

  // The filters, as the API's query: kind, origin and size are filtered by the server.
  function query() {
    const params = new URLSearchParams({ limit: "50" });
    if ($("#kind").value) params.set("kind", $("#kind").value);
    if ($("#origin").value) params.set("origin", $("#origin").value);
    const size = SIZES[$("#size").value];
    if (size && size[0] !== null) params.set("min_size", String(size[0]));
    if (size && size[1] !== null) params.set("max_size", String(size[1]));
    return params;
  }

  function visible(file) {
    const params = query();
    if (params.get("kind") && file.kind !== params.get("kind")) return false;
    if (params.get("origin") && file.origin !== params.get("origin")) return false;
    if (params.get("min_size") && file.size < Number(params.get("min_size"))) return false;
    return !(params.get("max_size") && file.size >= Number(params.get("max_size")));
  }

  async function load(reset) {
    if (reset) {
      generation += 1;
      cursor = null;
      fill(list);
    }
    const asked = generation;
    const params = query();
    if (cursor) params.set("cursor", cursor);
    more.disabled = true;
    try {
      const page = await api("GET", `/v1/files?${params}`);
      if (asked !== generation) return;
      page.data.forEach((file) => list.append(item(file)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      say(status, list.children.length ? "" : "No files match.");
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  }

  // Screen readers hear each upload's outcome once, not every progress step.
  const announce = (text) => {
    $("#upload-status").textContent = text;
  };

  // One upload: XHR rather than fetch, for the progress events. The file streams as it is.
  function upload(file) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
    const note = h("span", { class: "help", "aria-hidden": "true" }, "starting…");
    const row = h("li", {}, h("span", { class: "name" }, file.name), bar, note);
    $("#uploads").append(row);
    if (maxUpload !== null && file.size > maxUpload) {
      note.textContent = `too large: files of up to ${bytes(maxUpload)} can be uploaded here`;
      note.dataset.kind = "error";
      announce(`${file.name}: ${note.textContent}`);
      bar.remove();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.open("POST", "/v1/files");
      xhr.setRequestHeader("X-CSRF-Token", document.querySelector('meta[name="csrf-token"]').content);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        bar.value = event.loaded / event.total;
        note.textContent = `${bytes(event.loaded)} of ${bytes(event.total)}`;
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (err) {
          body = null;
        }
        if (xhr.status === 201) {
          bar.value = 1;
          note.textContent = "uploaded";
          note.dataset.kind = "ok";
          row.dataset.fileId = body.id;
          if (visible(body)) list.prepend(item(body));
          say(status, "");
        } else {
          note.textContent = body?.error?.message || `failed (${xhr.status})`;
          note.dataset.kind = "error";
        }
        announce(`${file.name}: ${note.textContent}`);
        resolve();
      });
      xhr.addEventListener("error", () => {
        note.textContent = "the connection broke; nothing was stored";
        note.dataset.kind = "error";
        announce(`${file.name}: ${note.textContent}`);
        resolve();
      });
      xhr.send(form);
    });
  }

  async function uploadAll(files) {
    await ready; // the upload limit is known before anything is sent
    for (const file of files) await upload(file);
    refreshStorage().catch(() => {});
  }

  const zone = $("#dropzone");
  ["dragenter", "dragover"].forEach((name) =>
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadAll([...event.dataTransfer.files]);
  });
  $("#file-input").addEventListener("change", (event) => {
    uploadAll([...event.target.files]);
    event.target.value = "";
  });
  $("#filters").addEventListener("change", () => load(true));
  $("#filters").addEventListener("submit", (event) => event.preventDefault());
  more.addEventListener("click", () => load(false));

  const ready = refreshStorage().catch((err) => showError(status, err));
  load(true);
});
