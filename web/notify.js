// Browser notifications for new leads, opt-in: the permission is asked for only when the box is
// ticked (a click), and the choice, with an optional sound, is remembered in localStorage. The
// sound is a short tone made with WebAudio, so there is no file to serve.

import { byId } from './dom.js';

const KEY = 'leadstream.notify';
const SOUND_KEY = 'leadstream.notify.sound';

const el = {
  toggle: byId('notify-toggle'),
  sound: byId('notify-sound'),
  note: byId('notify-note'),
};

const supported = typeof window.Notification === 'function';
let audio = null;

function stored(key) {
  try {
    return localStorage.getItem(key) === 'on';
  } catch (_) {
    return false;
  }
}

function store(key, on) {
  try {
    localStorage.setItem(key, on ? 'on' : 'off');
  } catch (_) {
    // Private mode: the choice lasts for this page only.
  }
}

function say(text) {
  el.note.textContent = text;
  el.note.hidden = !text;
}

// Whether a new lead should be announced now.
export const enabled = () => supported && el.toggle.checked && Notification.permission === 'granted';

function show() {
  el.toggle.checked = supported && stored(KEY) && Notification.permission === 'granted';
  el.sound.checked = stored(SOUND_KEY);
  el.sound.disabled = !el.toggle.checked;
  if (!supported) {
    el.toggle.disabled = true;
    say('This browser cannot show notifications.');
  } else if (Notification.permission === 'denied') {
    say('Notifications are blocked for this site in the browser settings.');
  } else {
    say('');
  }
}

el.toggle.addEventListener('change', async () => {
  if (el.toggle.checked && Notification.permission !== 'granted') {
    // Asked on this click only, never on page load.
    const answer = await Notification.requestPermission();
    if (answer !== 'granted') el.toggle.checked = false;
  }
  store(KEY, el.toggle.checked);
  show();
});

el.sound.addEventListener('change', () => {
  store(SOUND_KEY, el.sound.checked);
  if (el.sound.checked) beep();
});

function beep() {
  try {
    audio = audio || new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.35);
  } catch (_) {
    // No audio here: the notification alone will do.
  }
}

// Announces a new lead: `title` as the notification; a click brings this tab forward.
export function announce(title, body) {
  if (!enabled()) return;
  const n = new Notification(title, { body, tag: 'leadstream-lead' });
  n.onclick = () => window.focus();
  if (el.sound.checked) beep();
}

show();
