// Profile: the person's own details; password and sessions; export of everything kept;
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
    showRestriction((await api("GET", "/v1/account")).restriction);
  } catch (err) {
    showError($("#restriction-state"), err);
  }
});
