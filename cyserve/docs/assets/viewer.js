// cyserve's own API viewer: renders openapi.json (operations, parameters, docs) with a small
// "try it" form.  Used when no Swagger UI package is installed; everything is built with
// textContent, never innerHTML, so nothing in the document can inject markup.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function tryForm(path, method, op) {
  const inputs = {};
  const rows = (op.parameters || []).map((p) => {
    inputs[p.name] = el("input", { name: p.name, placeholder: (p.schema || {}).type || "string" });
    return el("tr", {}, el("td", {}, p.name), el("td", {}, inputs[p.name]), el("td", {}, p.description || ""));
  });
  const query = el("input", { placeholder: "a=1&b=2", size: "40" });
  const body = ["post", "put", "patch"].includes(method)
    ? el("textarea", { placeholder: "request body (JSON)" }) : null;
  const out = el("pre", { hidden: "" });
  const run = el("button", { type: "button" }, "Send");
  run.addEventListener("click", async () => {
    let url = path.replace(/\{([^}]+)\}/g, (_, name) => encodeURIComponent(inputs[name].value));
    url = url.replace(/^\//, "");  // relative to this page: works under a path prefix
    if (query.value) url += "?" + query.value;
    const init = { method: method.toUpperCase() };
    if (body && body.value) { init.body = body.value; init.headers = { "Content-Type": "application/json" }; }
    out.hidden = false;
    out.textContent = "...";
    try {
      const response = await fetch(new URL(url, document.baseURI).href, init);
      out.textContent = `${response.status} ${response.statusText}\n\n${await response.text()}`;
    } catch (error) {
      out.textContent = String(error);
    }
  });
  return el("div", {}, rows.length ? el("table", {}, el("tr", {}, el("th", {}, "parameter"),
    el("th", {}, "value"), el("th", {}, "")), ...rows) : "",
    el("div", {}, "query: ", query), body || "", run, out);
}

function render(spec) {
  const main = document.getElementById("viewer");
  main.replaceChildren(el("h1", {}, spec.info.title), el("p", { class: "version" }, `version ${spec.info.version} · OpenAPI ${spec.openapi}`));
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const head = el("summary", {}, el("span", { class: `method ${method}` }, method),
        el("span", { class: "path" }, path), el("span", { class: "summary" }, op.summary || ""));
      const parts = [];
      if (op.description) parts.push(el("p", {}, op.description));
      if (op.tags) parts.push(el("p", {}, "tags: " + op.tags.join(", ")));
      parts.push(tryForm(path, method, op));
      main.append(el("details", {}, head, el("div", { class: "body" }, ...parts)));
    }
  }
}

fetch(new URL("openapi.json", document.baseURI).href)
  .then((response) => response.json())
  .then(render)
  .catch((error) => { document.getElementById("viewer").textContent = "Could not load openapi.json: " + error; });
