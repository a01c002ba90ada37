// Profile: the person's own details; password and sessions; export of everything kept;
// account deletion.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const { api, $, say, showError } = faktry;
  const form = $("#profile-form");
  const FIELDS = ["first_name", "last_name", "company", "industry", "website"];

  faktry.jsonForm(form, {
    method: "PATCH",
    path: "/v1/profile",
    collect: (f) => Object.fromEntries(FIELDS.map((name) => [name, f[name].value.trim()])),
    done: () => say(form.querySelector("[role=status]"), "Saved.", "ok"),
  });

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
    collect: (f) => ({ password: f.password.value }),
    done: () => location.assign("/account/deleted"),
    confirmText: "Delete your account and everything in it? This cannot be undone.",
  });

  try {
    const profile = await api("GET", "/v1/profile");
    $("#email").value = profile.email;
    for (const name of FIELDS) form[name].value = profile[name] || "";
  } catch (err) {
    showError(form.querySelector("[role=status]"), err);
  }
});
