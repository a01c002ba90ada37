// faktry's pages: a small helper library shared by every page. The pages call the same /v1
// API as any client, with the session cookie and the CSRF token the page carries; nothing
// here holds an API key. Data is always put into the page as text, never as HTML.
"use strict";

const faktry = (() => {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content || "";
  const csrf = () => meta("csrf-token");
  const pollMs = () => Number(meta("poll-ms")) || 1000;

  class ApiError extends Error {
    constructor(status, code, message, field, details = {}) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
      // The error's other fields (a refused workflow's "problems", each naming node and field).
      this.details = details;
    }
  }

  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "faktry could not be reached; check your connection and try again");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401 && !location.pathname.startsWith("/login")) {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      }
      const error = data?.error || {};
      throw new ApiError(response.status, error.code || "http_" + response.status,
        error.message || `the request failed (${response.status})`, error.field, error);
    }
    return data;
  }

  // h("a", {href: "/x", class: "button"}, "text", child, ...): an element with text children.
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else if (value === true) el.setAttribute(name, "");
      else el.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const $ = (selector, root = document) => root.querySelector(selector);

  function fill(el, ...children) {
    el.replaceChildren();
    for (const child of children.flat()) if (child) el.append(child);
  }

  // Messages for a region: role="status" regions are read out by screen readers.
  function say(el, text, kind = "info") {
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind;
    el.hidden = !text;
  }

  function showError(el, err) {
    say(el, err instanceof ApiError ? err.message : String(err), "error");
  }

  // Millicredits as pages show money: "1,234.50", two decimals, rounded toward zero (never
  // more than there is), the same as the header's balance rendered by the server. The API
  // keeps millicredits; every page shows credits this way.
  function credits(milli) {
    const cents = Math.trunc(Number(milli) / 10);
    const whole = Math.trunc(Math.abs(cents) / 100).toLocaleString("en-US");
    return `${cents < 0 ? "-" : ""}${whole}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;
  }

  // The same with its unit: "1,234.50 credits".
  const money = (milli) => `${credits(milli)} credits`;

  // The balance in the header, for a page that learns a newer one (after a purchase, a job).
  function showBalance(milli) {
    const el = $("#balance-amount");
    if (el && Number.isFinite(Number(milli))) el.textContent = money(milli);
  }

  // The name an output downloads as: its source's name and the job, "clip-480p.mp4" (the
  // rule of pipelines/catalog.py output_name, which the server sends as the download's file
  // name). `labels` are the catalog's names the page carries.
  function outputName(labels, made, file, outputKey, sourceName) {
    const suffixes = labels.suffixes || { job_types: {}, presets: {}, plain: [] };
    let suffix = suffixes.job_types[made.type] || "";
    if (made.type === "video.transcode") suffix = suffixes.presets[made.params?.preset] || "";
    let extra = (outputKey || "").replace(/^video_/, "");
    if (suffixes.plain.includes(extra) || extra.startsWith("captions") || extra === suffix) extra = "";
    const clean = (t) => t.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
    const base = (sourceName || "").split("/").pop();
    const stem = base && /\.[^.]/.test(base.replace(/^\.+/, "")) ? base.replace(/\.[^.]*$/, "") : base;
    const parts = [sourceName ? clean(stem) || "file" : "", clean(suffix), clean(extra)].filter(Boolean);
    const multi = file.file_count > 1 || file.kind === "playlist";
    const ext = multi ? "" : (/\.([A-Za-z0-9]+)$/.exec(file.relpath || file.filename || "") || [, ""])[1];
    const name = parts.join("-") || "output";
    return multi ? `${name}/` : ext ? `${name}.${ext}` : name;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  // Call fn now and then every pollMs() while the page is open; stops when fn returns false.
  // Pauses while the tab is hidden, so background tabs cost the server nothing.
  function poll(fn, every = pollMs()) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      timer = null;
      if (stopped) return;
      if (document.hidden) {
        timer = setTimeout(tick, every);
        return;
      }
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (err) {
        again = true;
      }
      if (again && !stopped) timer = setTimeout(tick, every);
    };
    tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }
  // Like poll(fn), but driven by the server-sent event stream at `url`: fn runs now, then
  // after events (at most once per `settle` ms, for a burst), and stops when it returns
  // false. `wanted(data)` picks the events that concern the page. When the stream keeps
  // being cut soon after it opens (a proxy that does not pass streams on), the page falls
  // back to polling every `every` ms and tries the stream again a minute later.
  function live(url, fn, { every = pollMs(), wanted = () => true, settle = 250 } = {}) {
    let stopped = false;
    let source = null;
    let stopPolling = null;
    let retryTimer = null;
    let pending = null;
    let running = false;
    const run = async () => {
      pending = null;
      if (stopped) return;
      if (running) {
        pending = setTimeout(run, settle);
        return;
      }
      running = true;
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (err) {
        again = true;
      } finally {
        running = false;
      }
      if (!again) stop();
    };
    const soon = () => {
      if (!pending && !stopped) pending = setTimeout(run, settle);
    };
    const fallBack = () => {
      if (source) source.close();
      source = null;
      if (stopped) return;
      stopPolling = poll(async () => {
        await run();
        return !stopped;
      }, every);
      retryTimer = setTimeout(() => {
        retryTimer = null;
        if (stopPolling) stopPolling();
        stopPolling = null;
        open();
      }, 60000);
    };
    const open = () => {
      if (stopped || typeof EventSource === "undefined") {
        if (!stopped) fallBack();
        return;
      }
      let openedAt = 0;
      let strikes = 0;
      source = new EventSource(url);
      source.onopen = () => {
        openedAt = Date.now();
        soon(); // catch up on what happened while it was away
      };
      source.onmessage = (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          data = null;
        }
        if (data && wanted(data)) soon();
      };
      source.onerror = () => {
        // The browser reconnects on its own (with Last-Event-ID); a stream that never
        // stays up is being cut on the way.
        strikes = openedAt && Date.now() - openedAt > 10000 ? 0 : strikes + 1;
        openedAt = 0;
        // Refused (an error answer) the browser does not try again: poll at once.
        if (strikes >= 2 || source.readyState === EventSource.CLOSED) fallBack();
      };
    };
    function stop() {
      stopped = true;
      if (source) source.close();
      if (stopPolling) stopPolling();
      if (retryTimer) clearTimeout(retryTimer);
      if (pending) clearTimeout(pending);
    }
    run();
    open();
    return stop;
  }


  // A form that posts JSON: collect(form) gives the body, done(result) runs on success.
  // A random id for Idempotency-Key (crypto.randomUUID needs https; this does not).
  const uid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

  function jsonForm(form, { method = "POST", path, collect, done, status, confirmText, headers }) {
    const statusEl = status || form.querySelector("[role=status], [role=alert]");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (confirmText && !confirm(confirmText)) return;
      const button = form.querySelector("[type=submit]");
      if (button) button.disabled = true;
      say(statusEl, "");
      form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
      try {
        const body = collect ? collect(form) : Object.fromEntries(new FormData(form));
        const result = await api(method, typeof path === "function" ? path(form) : path, body, headers ? headers() : {});
        await done(result, form);
      } catch (err) {
        showError(statusEl, err);
        const field = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
        if (field) {
          field.setAttribute("aria-invalid", "true");
          field.focus();
        }
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  // Video thumbnails fetch their first frame only when scrolled into view (phones, data).
  const lazyVideos = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        entry.target.src = entry.target.dataset.src;
        lazyVideos.unobserve(entry.target);
      }
    }, { rootMargin: "200px" })
    : null;

  // The preview of a media file: an image, a video or an audio player.
  // A paged list of the API's `{data, next_cursor}` pages: `item(row)` makes each entry,
  // `more` loads the next page, `empty` shows while the list has none. Returns a function
  // that loads the first page.
  function pagedList({ path, list, more, empty, status, item, limit = 25 }) {
    let cursor = null;
    async function load(next) {
      const params = new URLSearchParams({ limit: String(limit) });
      if (next) params.set("cursor", next);
      const page = await api("GET", `${path}?${params}`);
      page.data.forEach((row) => list.append(item(row)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
    }
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
    return () => load(null).catch((err) => showError(status, err));
  }

  // A Delete button of one entry of a list: asks `question`, sends DELETE `path`, removes
  // `entry` and says so, or shows the error and lets the person try again.
  function deleteButton(button, { question, path, entry, name, status, list, empty }) {
    button.addEventListener("click", async () => {
      if (!confirm(question)) return;
      button.disabled = true;
      try {
        await api("DELETE", path);
        entry.remove();
        say(status, `Deleted ${name}.`);
        status.focus();
        empty.hidden = list.children.length > 0;
      } catch (err) {
        showError(status, err);
        button.disabled = false;
      }
    });
  }

  function preview(file, { thumb = false } = {}) {
    const url = file.url;
    const label = file.filename || file.name || file.id;
    if (file.kind === "image") return h("img", { src: url, alt: label, loading: "lazy", class: thumb ? "thumb" : "preview" });
    if (file.kind === "video") {
      if (!thumb) return h("video", { src: url, controls: true, preload: "metadata", class: "preview", "aria-label": label });
      const video = h("video", { preload: "metadata", muted: true, class: "thumb", "aria-label": label, "data-src": url + "#t=0.1" });
      if (lazyVideos) lazyVideos.observe(video);
      else video.src = video.dataset.src;
      return video;
    }
    if (file.kind === "audio") return h("audio", { src: url, controls: true, preload: "none", "aria-label": label });
    return h("span", { class: "kind" }, file.kind);
  }

  function initLogout() {
    const button = $("#logout");
    if (!button) return;
    button.addEventListener("click", async () => {
      try {
        await api("DELETE", "/v1/session");
      } catch (err) {
        // 401: the session had ended already. Anything else: still logged in, so say so.
        if (!(err instanceof ApiError && err.status === 401)) {
          alert("You could not be logged out just now. Reload the page and try again.");
          return;
        }
      }
      location.assign("/login");
    });
  }

  // Cookie consent: the configured analytics snippets load only after consent, and are
  // removed (with their first-party cookies) when consent is withdrawn.
  const CONSENT = "faktry_consent";

  function consentValue() {
    const match = document.cookie.match(/(?:^|; )faktry_consent=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function setConsent(value) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${CONSENT}=${value}; Max-Age=${180 * 86400}; Path=/; SameSite=Lax${secure}`;
  }

  function snippets() {
    const el = $("#analytics-snippets");
    return el ? JSON.parse(el.textContent) : [];
  }

  function loadAnalytics() {
    const nonce = $("script[nonce]")?.nonce || "";
    for (const snippet of snippets()) {
      if (document.querySelector(`script[data-analytics="${CSS.escape(snippet.name)}"]`)) continue;
      const script = document.createElement("script");
      script.dataset.analytics = snippet.name;
      for (const [name, value] of Object.entries(snippet.attrs || {})) script.setAttribute(name, value);
      if (snippet.src) {
        script.async = true;
        script.src = snippet.src;
      } else {
        script.nonce = nonce;
        script.textContent = snippet.inline;
      }
      document.head.append(script);
    }
  }

  function unloadAnalytics() {
    document.querySelectorAll("script[data-analytics]").forEach((el) => el.remove());
    const patterns = snippets().flatMap((s) => s.cookies || []);
    for (const cookie of document.cookie.split("; ")) {
      const name = cookie.split("=")[0];
      const matches = patterns.some((p) => (p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p));
      if (!matches) continue;
      for (const domain of ["", `; Domain=${location.hostname}`, `; Domain=.${location.hostname}`]) {
        document.cookie = `${name}=; Max-Age=0; Path=/${domain}`;
      }
    }
  }

  function initConsent() {
    const banner = $("#consent");
    if (!banner) return;
    const current = consentValue();
    if (current === "analytics") loadAnalytics();
    banner.hidden = current !== null;
    $("#consent-accept").addEventListener("click", () => {
      setConsent("analytics");
      banner.hidden = true;
      loadAnalytics();
      $("#consent-open")?.focus();
    });
    $("#consent-decline").addEventListener("click", () => {
      const had = consentValue() === "analytics";
      setConsent("necessary");
      banner.hidden = true;
      unloadAnalytics();
      $("#consent-open")?.focus();
      // A script that already ran may hold state in the page: start it afresh without it.
      if (had) location.reload();
    });
    $("#consent-open")?.addEventListener("click", () => {
      banner.hidden = false;
      $("#consent-accept").focus();
    });
  }

  // Lists as stacked rows on narrow screens (the CSS of table.stack): every cell of a table in
  // a .table-wrap carries its column's name in data-label, rows added later included. The
  // explicit roles keep the table a table for screen readers once CSS changes its display.
  function stackTable(table) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => {
      const shown = [...th.childNodes].filter((n) => !(n.classList && n.classList.contains("visually-hidden")));
      return shown.map((n) => n.textContent).join("").trim();
    });
    table.classList.add("stack");
    table.setAttribute("role", "table");
    table.querySelectorAll("thead, tbody").forEach((group) => group.setAttribute("role", "rowgroup"));
    table.querySelectorAll("thead tr").forEach((tr) => tr.setAttribute("role", "row"));
    table.querySelectorAll("thead th").forEach((th) => th.setAttribute("role", "columnheader"));
    const label = (tr) => {
      tr.setAttribute("role", "row");
      [...tr.children].forEach((cell, i) => {
        const wide = Number(cell.getAttribute("colspan") || 1) > 1;
        cell.dataset.label = wide ? "" : heads[i] || "";
        cell.setAttribute("role", cell.tagName === "TH" ? "rowheader" : "cell");
      });
    };
    for (const body of table.tBodies) {
      [...body.rows].forEach(label);
      // Rows added, or a row's cells replaced (a live list redraws either way).
      new MutationObserver((changes) => {
        const rows = new Set();
        for (const change of changes) {
          if (change.target.tagName === "TR") rows.add(change.target);
          change.addedNodes.forEach((node) => node.tagName === "TR" && rows.add(node));
        }
        rows.forEach(label);
      }).observe(body, { childList: true, subtree: true });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    initLogout();
    initConsent();
    document.querySelectorAll(".table-wrap > table").forEach((table) => table.tHead && stackTable(table));
  });

  // A job type's input schema as the forms use it: they pick files of the library, so the
  // API's `url` (fetched by the worker in place of `file_id`) is left out, and the field it
  // stands in for is required again.
  const formInput = (schema) => {
    const properties = { ...(schema.properties || {}) };
    delete properties.url;
    const either = (schema.anyOf || []).map((alt) => (alt.required || [])[0]).filter((n) => n && n !== "url");
    return { ...schema, properties, required: [...(schema.required || []), ...either] };
  };

  return { uid, api, ApiError, h, $, fill, say, showError, credits, money, showBalance, outputName, bytes, when, duration, poll, live, jsonForm, pagedList, deleteButton, preview, pollMs, consentValue, formInput };
})();
