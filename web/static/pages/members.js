// Members: the account's people and their roles; owners and admins change roles and remove
// people; anyone may leave (except the last owner).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, h, $, fill, say, showError, when } = faktry;
  const table = $("#members");
  const body = $("#members tbody");
  const status = $("#members-status");
  const canManage = table.dataset.canManage === "True";
  const youAreOwner = table.dataset.youAreOwner === "True";
  const ROLES = ["owner", "admin", "developer", "billing", "viewer"];

  function row(member) {
    const who = [member.first_name, member.last_name].filter(Boolean).join(" ");
    const label = who ? `${who} (${member.email})` : member.email;
    let role = h("span", {}, member.role);
    if (canManage && (youAreOwner || member.role !== "owner")) {
      const id = `role-${member.id}`;
      const select = h("select", { id, "aria-label": `Role of ${member.email}` },
        ROLES.filter((r) => youAreOwner || r !== "owner").map((r) => h("option", { value: r, selected: r === member.role }, r)));
      select.addEventListener("change", async () => {
        try {
          const changed = await api("PATCH", `/v1/members/${encodeURIComponent(member.id)}`, { role: select.value });
          say(status, `${member.email} is now ${changed.role}.`, "ok");
        } catch (err) {
          select.value = member.role;
          showError(status, err);
        }
        await load();
      });
      role = select;
    }
    const actions = h("td", { class: "actions" });
    if (member.you || (canManage && (youAreOwner || member.role !== "owner"))) {
      const text = member.you ? "Leave the account" : "Remove";
      const button = h("button", { type: "button", class: "secondary small", "aria-label": member.you ? text : `Remove ${member.email}` }, text);
      button.addEventListener("click", async () => {
        const question = member.you
          ? "Leave this account? You will lose access to it at once."
          : `Remove ${member.email}? Their sessions end and their API keys stop working at once.`;
        if (!confirm(question)) return;
        try {
          await api("DELETE", `/v1/members/${encodeURIComponent(member.id)}`);
          if (member.id && member.you) {
            location.assign("/login");
            return;
          }
          say(status, `Removed ${member.email}.`, "ok");
          await load();
        } catch (err) {
          showError(status, err);
        }
      });
      actions.append(button);
    }
    return h("tr", { dataset: { memberId: member.id, role: member.role } },
      h("td", {}, label, member.you ? h("span", { class: "help" }, " (you)") : null),
      h("td", {}, role),
      h("td", {}, member.last_login_at ? when(member.last_login_at) : "never"),
      actions);
  }

  async function load() {
    const list = await api("GET", "/v1/members");
    fill(body, list.data.map(row));
  }
  load().catch((err) => showError(status, err));

  // Invitations (owners and admins): send, list, revoke.
  const inviteForm = $("#invite-form");
  if (!inviteForm) return;
  const invitations = $("#invitations tbody");
  function invitationRow(inv) {
    const actions = h("td", { class: "actions" });
    if (inv.status === "pending") {
      const revoke = h("button", { type: "button", class: "secondary small", "aria-label": `Revoke the invitation to ${inv.email}` }, "Revoke");
      revoke.addEventListener("click", async () => {
        try {
          await api("DELETE", `/v1/invitations/${encodeURIComponent(inv.id)}`);
          say(status, `The invitation to ${inv.email} is revoked.`, "ok");
          await loadInvitations();
        } catch (err) {
          showError(status, err);
        }
      });
      actions.append(revoke);
    }
    const state = inv.status === "pending" ? `pending until ${when(inv.expires_at)}` : inv.status;
    return h("tr", { dataset: { invitationId: inv.id, status: inv.status } },
      h("td", {}, inv.email), h("td", {}, inv.role), h("td", {}, state), actions);
  }
  async function loadInvitations() {
    const list = await api("GET", "/v1/invitations");
    fill(invitations, list.data.map(invitationRow));
    $("#invitations-empty").hidden = list.data.length > 0;
  }
  faktry.jsonForm(inviteForm, {
    path: "/v1/invitations",
    collect: (f) => ({ email: f.email.value.trim(), role: f.role.value }),
    done: async (inv, f) => {
      say(f.querySelector("[role=status]"), `Invitation sent to ${inv.email}.`, "ok");
      f.email.value = "";
      await loadInvitations();
    },
  });
  loadInvitations().catch((err) => showError(status, err));
});
