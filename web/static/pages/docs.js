// The API reference: Redoc (vendored, see web/static/vendor/redoc) renders /v1/openapi.json
// into #redoc; web/pages/docs.py says what the page's Content-Security-Policy lets it do.
(function () {
  "use strict";
  var holder = document.getElementById("redoc");
  var status = document.getElementById("docs-status");
  if (!holder || !window.Redoc) {
    if (status) status.textContent = "The reference could not be shown; read /v1/openapi.json instead.";
    return;
  }
  var options = {
    expandResponses: "200,201,202",
    jsonSampleExpandLevel: 3,
    hideHostname: true,
    requiredPropsFirst: true,
    theme: { sidebar: { width: "16rem" } },
  };
  window.Redoc.init(holder.getAttribute("data-spec-url"), options, holder, function (errors) {
    if (!status) return;
    if (errors) {
      status.textContent = "The reference could not be shown; read /v1/openapi.json instead.";
    } else {
      status.hidden = true;
    }
  });
})();
