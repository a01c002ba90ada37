// A gallery entry's page, for its submitter (unpublish) and for staff (remove for a policy
// violation, with the reason kept in the moderation log).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { $, say } = faktry;
  const unpublish = $("#unpublish-form");
  if (unpublish) {
    faktry.jsonForm(unpublish, {
      method: "DELETE",
      path: () => `/v1/gallery/${unpublish.dataset.entry}`,
      collect: () => undefined,
      confirmText: "Take this entry out of the gallery?",
      done: () => location.assign("/gallery?unpublished=1"),
    });
  }
  const remove = $("#remove-form");
  if (remove) {
    faktry.jsonForm(remove, {
      path: () => `/v1/admin/gallery/${remove.dataset.entry}/remove`,
      collect: (f) => ({ reason: f.reason.value.trim() }),
      done: () => {
        remove.querySelector("[type=submit]").hidden = true;
        remove.reason.disabled = true;
        say(remove.querySelector("[role=alert]"), "Removed. It is hidden from everyone; the reason is in the moderation log.", "ok");
      },
    });
  }
});
