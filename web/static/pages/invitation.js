// Accepting an invitation: a password of one's own, then the person is logged in.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = faktry.$("#accept-form");
  if (!form) return;
  faktry.jsonForm(form, {
    path: "/v1/invitations/accept",
    collect: (f) => ({ token: form.dataset.token, password: f.password.value, confirm_age_16: f.confirm_age_16.checked }),
    done: () => location.assign("/jobs"),
  });
});
