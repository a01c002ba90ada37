// Log in and sign up: POST /v1/session starts the session cookie. POST /v1/signup answers
// the same whether or not the email had an account, so the page logs in right after it.
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
      done: async (_, form) => {
        // Not faktry.api: a refused log-in here must stay on this page, not go to /login.
        const response = await fetch("/v1/session", {
          method: "POST",
          credentials: "same-origin",
          headers: { Accept: "application/json", "Content-Type": "application/json" },
          body: JSON.stringify({ email: form.email.value.trim(), password: form.password.value }),
        });
        if (response.ok) return location.assign("/library");
        const error = (await response.json().catch(() => null))?.error || {};
        throw new faktry.ApiError(response.status, error.code || "login_failed",
          response.status === 401
            ? "We could not log you in with this email and password. If the email already has an account, log in with its password."
            : error.message || `the request failed (${response.status})`);
      },
    });
  }
});
