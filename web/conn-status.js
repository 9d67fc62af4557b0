// The connection indicator in the top bar: how fresh the list is (see live-source.js).

import { byId } from './dom.js';

const TEXT = { live: 'Live', checking: 'Checking…', offline: 'Offline' };
const TITLE = {
  live: 'New leads appear the moment they are saved.',
  checking: 'The live stream dropped; checking for new leads every 3 seconds.',
  offline: 'The server cannot be reached; retrying every 3 seconds.',
};

const el = byId('conn-status');

export function showConnection(state) {
  el.dataset.state = state;
  el.textContent = TEXT[state];
  el.title = TITLE[state];
}
