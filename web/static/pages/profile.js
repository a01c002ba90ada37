// Profile: the person's own details; the verification mail again; password and sessions; export of everything kept (an
// archive built in the background, or one JSON document);
// restriction of processing; objection to analytics (the consent choice); account deletion.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, $, say, showError, consentValue } = faktry;
  const form = $("#profile-form");
  const FIELDS = ["first_name", "last_name", "company", "industry", "website", "location"];
  // No birthday in the future: today where it is latest on Earth is the last day offered.
  form.birthday.max = new Date(Date.now() + 14 * 3600e3).toISOString().slice(0, 10);

  faktry.jsonForm(form, {
    method: "PATCH",
    path: "/v1/profile",
    collect: (f) => ({
      ...Object.fromEntries(FIELDS.map((name) => [name, f[name].value.trim()])),
      birthday: f.birthday.value || null,
    }),
    done: () => say(form.querySelector("[role=status]"), "Saved.", "ok"),
  });

  // An address not confirmed yet: the verification mail again (at most once a minute).
  const verification = $("#verification-form");
  if (verification) {
    faktry.jsonForm(verification, {
      path: "/v1/email/verification",
      collect: () => ({}),
      done: () => say(verification.querySelector("[role=status]"), "A new link is on its way: check your mail.", "ok"),
    });
  }

  // Restriction: one button that freezes the account or lifts the freeze.
  const restrictionForm = $("#restriction-form");
  const toggle = $("#restriction-toggle");
  function showRestriction(state) {
    const restricted = Boolean(state.restricted);
    toggle.dataset.restricted = String(restricted);
    toggle.textContent = restricted ? "Lift the restriction" : "Restrict processing";
    let text = restricted
      ? `Processing is restricted since ${new Date(state.restricted_at).toLocaleString()}: no new jobs start.`
      : "Processing is not restricted.";
    const running = (state.unfinished_jobs || 0) + (state.running_workflow_runs || 0);
    if (restricted && running) text += ` ${running} job(s) or run(s) accepted before still finish unless you cancel them.`;
    say($("#restriction-state"), text, "info");
  }
  faktry.jsonForm(restrictionForm, {
    method: "PUT",
    path: "/v1/account/restriction",
    status: $("#restriction-state"),
    collect: () => ({ restricted: toggle.dataset.restricted !== "true" }),
    done: showRestriction,
  });

  // Objection to analytics is withdrawing consent: reopen the site's own consent choice.
  const consentButton = $("#profile-consent-open");
  if (consentButton) {
    const value = consentValue();
    $("#consent-state").textContent = value === "analytics"
      ? "You have allowed analytics cookies."
      : value === "necessary" ? "You have refused analytics cookies." : "You have not chosen yet.";
    consentButton.addEventListener("click", () => $("#consent-open")?.click());
  }

  // A password change ends every session and starts a new one here, with a new CSRF token.
  const passwordForm = $("#password-form");
  faktry.jsonForm(passwordForm, {
    path: "/v1/profile/password",
    collect: (f) => ({ current_password: f.current_password.value, new_password: f.new_password.value }),
    done: (session, f) => {
      document.querySelector('meta[name="csrf-token"]').content = session.csrf_token;
      f.reset();
      say(passwordForm.querySelector("[role=status]"), "Password changed. Every other session has ended.", "ok");
    },
  });

  // Export archives: ask for one, follow it while it is built, download it while it is kept.
  const exportList = $("#export-list");
  const exportState = $("#export-state");
  const exportButton = $("#export-request");
  let following = null;
  let announced = new Set();
  function archiveItem(archive) {
    const made = new Date(archive.created_at).toLocaleString();
    const parts = [faktry.h("span", {}, `Asked for ${made}: `)];
    if (archive.status === "ready") {
      parts.push(
        faktry.h("a", { href: archive.download_url, class: "button secondary", download: "" },
          `Download (${faktry.bytes(archive.size)}, ${archive.file_count} files)`),
        faktry.h("span", { class: "help" }, ` until ${new Date(archive.expires_at).toLocaleString()}`),
      );
    } else if (archive.status === "expired") {
      parts.push(faktry.h("span", { class: "help" }, "expired and removed."));
    } else if (archive.status === "failed") {
      parts.push(faktry.h("span", { class: "error" }, "could not be built. Nothing was lost: ask for a new one."));
    } else {
      parts.push(faktry.h("span", { class: "help" }, archive.status === "queued" ? "waiting to be built…" : "being built…"));
    }
    return faktry.h("li", { "data-status": archive.status, "data-id": archive.id }, ...parts);
  }
  async function showArchives() {
    const archives = (await api("GET", "/v1/account/exports")).data;
    faktry.fill(exportList, ...archives.map(archiveItem));
    const pending = archives.some((a) => a.status === "queued" || a.status === "building");
    exportButton.disabled = pending;
    for (const a of archives) {
      if (a.status === "ready" && announced.has(a.id)) {
        announced.delete(a.id);
        say(exportState, "Your archive is ready to download.", "ok");
      }
      if (a.status === "failed" && announced.has(a.id)) {
        announced.delete(a.id);
        say(exportState, "Your archive could not be built. Nothing was lost: ask for a new one.", "error");
      }
    }
    if (pending) {
      archives.filter((a) => a.status === "queued" || a.status === "building").forEach((a) => announced.add(a.id));
      if (!following) following = faktry.poll(async () => { await showArchives(); return !!following; });
    } else if (following) {
      const stop = following;
      following = null;
      stop();
    }
    return pending;
  }
  faktry.jsonForm($("#export-form"), {
    path: "/v1/account/exports",
    status: exportState,
    collect: () => undefined,
    done: async () => {
      say(exportState, "Your archive is being built. This page tells you when it is ready; you can leave it and come back.", "info");
      await showArchives();
    },
  });

  faktry.jsonForm($("#sessions-form"), {
    method: "DELETE",
    path: "/v1/sessions",
    collect: () => undefined,
    done: () => location.assign("/login"),
    confirmText: "Log out everywhere, this browser included?",
  });

  faktry.jsonForm($("#delete-form"), {
    method: "DELETE",
    path: "/v1/account",
    collect: (f) => ({ password: f.password.value, keep_gallery_public: f.keep_gallery_public.checked }),
    done: () => location.assign("/account/deleted"),
    confirmText: "Delete your account and everything in it? This cannot be undone.",
  });

  try {
    const profile = await api("GET", "/v1/profile");
    $("#email").value = profile.email;
    for (const name of FIELDS) form[name].value = profile[name] || "";
    form.birthday.value = profile.birthday || "";
  } catch (err) {
    showError(form.querySelector("[role=status]"), err);
  }
  try {
    await showArchives();
  } catch (err) {
    showError(exportState, err);
  }
  try {
    showRestriction((await api("GET", "/v1/account")).restriction);
  } catch (err) {
    showError($("#restriction-state"), err);
  }
});
