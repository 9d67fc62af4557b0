// Short messages in the corner: arrivals, and what a button did. A lead's toast opens that lead.

import { byId, make } from './dom.js';

const TOAST_MS = 6000;
const MAX_TOASTS = 6;

const box = byId('toasts');

// kind: 'lead' | 'ok' | 'error' | undefined. With a leadId the text is a button that opens it.
export function toast(text, kind, leadId) {
  const t = make('div', 'toast' + (kind ? ' toast-' + kind : ''));
  t.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  const msg = make(leadId !== undefined ? 'button' : 'span', 'toast-text', text);
  if (leadId !== undefined) {
    msg.type = 'button';
    msg.dataset.leadId = String(leadId);
    msg.title = 'Show this lead';
    t.dataset.leadId = String(leadId);
  }
  t.appendChild(msg);
  // The × is drawn by CSS so the toast's text is exactly the message.
  const close = make('button', 'toast-close');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  t.appendChild(close);
  box.appendChild(t);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  const timer = setTimeout(() => t.remove(), kind === 'error' ? TOAST_MS * 2 : TOAST_MS);
  close.addEventListener('click', () => {
    clearTimeout(timer);
    t.remove();
  });
  return t;
}

// The toasts about lead `id` go (it was erased).
export function dropLead(id) {
  for (const t of box.querySelectorAll('.toast')) {
    if (t.dataset.leadId === String(id)) t.remove();
  }
}

// Calls fn(id) when a lead's toast is clicked.
export function onOpenLead(fn) {
  box.addEventListener('click', (ev) => {
    const btn = ev.target.closest('button.toast-text[data-lead-id]');
    if (btn) fn(btn.dataset.leadId);
  });
}
