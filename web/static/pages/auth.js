// Log in and sign up: POST /v1/session and POST /v1/signup start the session cookie.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const login = document.getElementById("login-form");
  if (login) {
    faktry.jsonForm(login, {
      path: "/v1/session",
      collect: (form) => ({ email: form.email.value.trim(), password: form.password.value }),
      done: () => location.assign(login.dataset.next || "/jobs"),
    });
  }
  const signup = document.getElementById("signup-form");
  if (signup) {
    faktry.jsonForm(signup, {
      path: "/v1/signup",
      collect: (form) => ({
        email: form.email.value.trim(),
        password: form.password.value,
        confirm_age_16: form.confirm_age_16.checked,
      }),
      done: () => location.assign("/library"),
    });
  }
});
