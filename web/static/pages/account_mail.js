// The pages the account mails link to: confirm the address, ask for a password reset link,
// choose a new password. The token of a link is sent in a POST body (web/api/email.py).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const show = (id, form) => {
    form.hidden = true;
    document.getElementById(id).hidden = false;
  };
  const verify = document.getElementById("verify-form");
  if (verify) {
    faktry.jsonForm(verify, {
      path: "/v1/email/verify",
      collect: (form) => ({ token: form.dataset.token }),
      done: () => show("verify-done", verify),
    });
  }
  const reset = document.getElementById("reset-form");
  if (reset) {
    faktry.jsonForm(reset, {
      path: "/v1/password-reset",
      collect: (form) => ({ email: form.email.value.trim() }),
      done: () => show("reset-sent", reset),
    });
  }
  const confirmForm = document.getElementById("reset-confirm-form");
  if (confirmForm) {
    faktry.jsonForm(confirmForm, {
      path: "/v1/password-reset/confirm",
      collect: (form) => ({ token: form.dataset.token, new_password: form.new_password.value }),
      done: () => show("reset-done", confirmForm),
    });
  }
});
