// Profile: the person's own details; export of everything kept; account deletion.
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

  faktry.jsonForm($("#delete-form"), {
    method: "DELETE",
    path: "/v1/account",
    collect: (f) => ({ password: f.password.value }),
    done: () => location.assign("/signup"),
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
