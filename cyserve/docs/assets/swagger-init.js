// Starts Swagger UI on the document next to this page (relative, so it works under a path prefix).
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
});
