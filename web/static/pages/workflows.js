// The workflows list: saved workflows with their version and last runs, and the ready-made
// templates to start a new one from.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, showError, when, pagedList, deleteButton } = faktry;
  const body = $("#workflows tbody");
  const status = $("#workflows-status");
  const more = $("#more");

  const runLink = (run) => h("li", { dataset: { runId: run.id, status: run.status } },
    h("a", { href: `/workflow-runs/${encodeURIComponent(run.id)}` },
      h("span", { class: "badge", "data-status": run.status }, run.status)),
    " ", h("span", { class: "help" }, when(run.created_at)));

  async function lastRuns(workflow, cell) {
    try {
      const page = await api("GET", `/v1/workflows/${encodeURIComponent(workflow.id)}/runs?limit=3`);
      fill(cell, page.data.length ? h("ul", { class: "wf-last-runs" }, page.data.map(runLink)) : h("span", { class: "help" }, "never run"));
    } catch (err) {
      fill(cell, h("span", { "data-kind": "error" }, err.message));
    }
  }

  function row(workflow) {
    const runs = h("td", {}, "…");
    const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Delete ${workflow.name}` }, "Delete");
    const tr = h("tr", { dataset: { workflowId: workflow.id } },
      h("th", { scope: "row" }, h("a", { href: `/workflows/${encodeURIComponent(workflow.id)}` }, workflow.name),
        workflow.description ? h("p", { class: "help" }, workflow.description) : null),
      h("td", {}, `v${workflow.version}`),
      runs,
      h("td", {}, when(workflow.updated_at)),
      h("td", {}, remove));
    deleteButton(remove, { question: `Delete the workflow ${workflow.name} and its versions? Its runs stay in the history.`, path: `/v1/workflows/${encodeURIComponent(workflow.id)}`,
      entry: tr, name: workflow.name, status, list: body, empty: $("#workflows-empty") });
    lastRuns(workflow, runs);
    return tr;
  }

  async function templates() {
    const list = await api("GET", "/v1/workflow-templates");
    fill($("#templates"), list.data.map((t) => h("li", { class: "card", dataset: { template: t.id } },
      h("h3", {}, t.name),
      h("p", {}, t.description),
      h("p", { class: "help" }, `${Object.keys(t.graph.nodes).length} nodes: ${Object.keys(t.graph.nodes).join(", ")}`),
      h("a", { class: "button small", href: `/workflows/new?template=${encodeURIComponent(t.id)}`,
        "aria-label": `Start from ${t.name}` }, "Start from this"))));
  }

  pagedList({ path: "/v1/workflows", list: body, more, empty: $("#workflows-empty"), status, item: row })();
  templates().catch((err) => showError(status, err));
});
