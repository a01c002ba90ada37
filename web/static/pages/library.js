// The media library: storage against the quota, uploads with progress, files with filters.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, bytes, when, preview } = faktry;
  const list = $("#files");
  const status = $("#files-status");
  const more = $("#more");
  let cursor = null;
  let maxUpload = null;

  const SIZES = { small: [0, 10 * 2 ** 20], medium: [10 * 2 ** 20, 100 * 2 ** 20], large: [100 * 2 ** 20, Infinity] };

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
        refreshStorage();
      } catch (err) {
        showError(status, err);
        remove.disabled = false;
      }
    });
    const media = file.media || {};
    const facts = [file.kind, bytes(file.size)];
    if (media.width && media.height) facts.push(`${media.width}×${media.height}`);
    if (media.duration) facts.push(`${Number(media.duration).toFixed(1)} s`);
    const li = h("li", { class: "tile", dataset: { fileId: file.id, kind: file.kind } },
      h("a", { href: file.url, class: "tile-media", "aria-label": `Open ${file.filename || file.id}` }, preview(file, { thumb: true })),
      h("p", { class: "name" }, file.filename || file.name || file.id),
      h("p", { class: "help" }, facts.join(" · "), h("br"), file.origin === "output" ? "output, " : "uploaded ", when(file.created_at)),
      h("div", { class: "actions" },
        h("a", { href: `/jobs/new?file=${encodeURIComponent(file.id)}`, class: "button small" }, "Use in a job"),
        h("a", { href: file.url, download: file.filename || "", class: "button secondary small" }, "Download"),
        remove));
    return li;
  }

  function visible(file) {
    const origin = $("#origin").value;
    const size = SIZES[$("#size").value];
    if (origin && file.origin !== origin) return false;
    if (size && !(file.size >= size[0] && file.size < size[1])) return false;
    // Members of a multi-file output (an HLS rendition's segments) show as their root.
    return !(file.root_id && file.root_id !== file.id);
  }

  async function load(reset) {
    if (reset) {
      cursor = null;
      fill(list);
    }
    const params = new URLSearchParams({ limit: "50" });
    if ($("#kind").value) params.set("kind", $("#kind").value);
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api("GET", `/v1/files?${params}`);
      page.data.filter(visible).forEach((file) => list.append(item(file)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      say(status, list.children.length ? "" : "No files match.");
    } catch (err) {
      showError(status, err);
    }
  }

  // One upload: XHR rather than fetch, for the progress events. The file streams as it is.
  function upload(file) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
    const note = h("span", { class: "help" }, "starting…");
    const row = h("li", {}, h("span", { class: "name" }, file.name), bar, note);
    $("#uploads").append(row);
    if (maxUpload !== null && file.size > maxUpload) {
      note.textContent = `too large: files of up to ${bytes(maxUpload)} can be uploaded here`;
      note.dataset.kind = "error";
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
          if (visible(body) && (!$("#kind").value || $("#kind").value === body.kind)) list.prepend(item(body));
          say(status, "");
        } else {
          note.textContent = body?.error?.message || `failed (${xhr.status})`;
          note.dataset.kind = "error";
        }
        resolve();
      });
      xhr.addEventListener("error", () => {
        note.textContent = "the connection broke; nothing was stored";
        note.dataset.kind = "error";
        resolve();
      });
      xhr.send(form);
    });
  }

  async function uploadAll(files) {
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

  refreshStorage().catch((err) => showError(status, err));
  load(true);
});
