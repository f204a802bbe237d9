// Starts Swagger UI on /api/docs (authapp/docs.py). A file, not an inline script: the page's
// CSP allows scripts from this origin only. The document's URL comes from the page; Swagger UI
// reads no configuration from the query string (queryConfigEnabled stays false).
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    queryConfigEnabled: false,
    validatorUrl: null,
  });
});
