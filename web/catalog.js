// The forms and pages the server has leads for: the choices in the filter menus, and the form
// names that rows, toasts and the detail view show instead of bare ids.

import { api } from './api.js';
import { Emitter } from './events.js';
import { str } from './format.js';

let forms = new Map(); // form_id -> {form_id, form_name, page_id, count}
let pages = [];
const events = new Emitter();

// "forms" (the list, after each load of /api/forms) and "pages" (after /api/pages).
export const on = (type, fn) => events.on(type, fn);

export const knowsForm = (formId) => forms.has(String(formId));

// Loads both lists. A failure keeps the previous ones: they are only menus and names.
export function load() {
  loadForms();
  loadPages();
}

async function loadForms() {
  let data;
  try {
    data = await api('/api/forms');
  } catch (e) {
    return;
  }
  const items = Array.isArray(data.forms) ? data.forms : [];
  forms = new Map(items.map((f) => [str(f.form_id), f]));
  events.emit('forms', items);
}

async function loadPages() {
  let data;
  try {
    data = await api('/api/pages');
  } catch (e) {
    return;
  }
  pages = Array.isArray(data.pages) ? data.pages : [];
  events.emit('pages', pages);
}

// A lead's form by name when the lead or the form list knows it, else by id.
export function formLabel(lead) {
  if (lead.form_name) return String(lead.form_name);
  const f = lead.form_id ? forms.get(String(lead.form_id)) : null;
  if (f && f.form_name) return String(f.form_name);
  return lead.form_id ? String(lead.form_id) : '';
}
