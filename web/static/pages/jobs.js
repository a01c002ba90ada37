// The jobs list, refreshed while any job on the first page is still going.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when } = faktry;
  const labels = JSON.parse($("#catalog-labels")?.textContent || "{}");
  // Credits on pages, always with two decimals; the API counts millicredits.
  const money = faktry.credits;
  // What ran, by name, with the machine names beside it for API users.
  const what = (job) => {
    const name = labels.job_types?.[job.type]?.name;
    const machine = job.model ? `${job.type} (${job.model})` : job.type;
    return name ? [`${name} `, h("code", { class: "help" }, machine)] : machine;
  };
  const body = $("#jobs tbody");
  const status = $("#jobs-status");
  const more = $("#more");
  let cursor = null;

  const row = (job) => h("tr", { dataset: { jobId: job.id, status: job.status } },
    h("td", {}, h("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.id)),
    h("td", {}, what(job)),
    h("td", {}, h("span", { class: "badge", "data-status": job.status }, job.status)),
    h("td", {}, h("progress", { max: 1, value: job.status === "succeeded" ? 1 : job.progress, "aria-label": `Progress of ${job.id}` })),
    h("td", {}, money(job.cost.charged ?? job.cost.held)),
    h("td", {}, when(job.created_at)));

  let extended = false;

  const query = (extra = {}) => {
    const params = new URLSearchParams({ limit: "25", ...extra });
    if ($("#status").value) params.set("status", $("#status").value);
    return `/v1/jobs?${params}`;
  };

  let generation = 0; // a changed filter makes answers to the old one stale

  async function first() {
    if (extended) return false; // older pages are showing: stop replacing the table
    const asked = generation;
    const page = await api("GET", query());
    if (asked !== generation || extended) return false;
    fill(body, page.data.map(row));
    // While only the first page shows, "Load more" continues from its current end.
    cursor = page.next_cursor;
    more.hidden = !cursor;
    say(status, page.data.length ? "" : ($("#status").value ? "No jobs with this status." : "No jobs yet. Start one with “New job”."));
    return page.data.some((job) => job.status === "queued" || job.status === "running");
  }

  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const page = await api("GET", query({ cursor }));
      extended = true;
      page.data.forEach((job) => body.append(row(job)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showError(status, err);
    } finally {
      more.disabled = false;
    }
  });

  const refresh = () => first().catch((err) => {
    showError(status, err);
    return true;
  });
  // The list is read again when any of the tenant's jobs has news (polling where streams
  // are cut on the way).
  const watch = () => faktry.live("/v1/events/stream", refresh, {
    every: Math.max(faktry.pollMs(), 2000),
    wanted: (event) => Boolean(event.job_id),
    settle: 500,
  });
  let stop = watch();
  $("#job-filters").addEventListener("submit", (event) => event.preventDefault());
  $("#status").addEventListener("change", () => {
    stop();
    generation += 1;
    cursor = null;
    extended = false;
    stop = watch();
  });
});
