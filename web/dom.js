// Building DOM without an HTML parser. Lead values come from strangers filling in a form, so
// every piece of lead data reaches the page through textContent (or an attribute that cannot
// execute), never through innerHTML. Row-like markup lives in <template>s in index.html; these
// helpers clone them and fill them in.

const SVG_NS = 'http://www.w3.org/2000/svg';

export const byId = (id) => document.getElementById(id);

export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const k in attrs) node.setAttribute(k, String(attrs[k]));
  return node;
}

// A fresh copy of the one element inside <template id="…">.
export function fromTemplate(id) {
  return byId(id).content.firstElementChild.cloneNode(true);
}

// Text in a cell (with the same text as its tooltip, since cells cut long values), or a muted
// placeholder when there is none.
export function fillCell(td, text, placeholder) {
  if (text) {
    td.textContent = text;
    td.title = text;
  } else {
    td.replaceChildren(make('span', 'none', placeholder));
    td.removeAttribute('title');
  }
}
