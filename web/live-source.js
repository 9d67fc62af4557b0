// Where leads come from. Knows nothing of the page: it tells whoever listens
//   "lead"    (lead)              a lead not passed on before, oldest first;
//   "refresh" ({full, missed})    what is shown may be out of date: reload the list and the
//                                 statistics (full: everything else too; missed: how many
//                                 arrived that were too many to pass on one by one);
//   "erased"  (id)                a lead was erased: whatever shows it drops it;
//   "state"   ("live" | "checking" | "offline")   how fresh that is;
//   "logout"  ()                  the server ended the session the stream was opened with
//                                 (logout elsewhere, expiry): it has stopped for good.
//
// Freshness, in order of preference:
//   1. An EventSource on /api/stream (live).
//   2. When it errors: close it, check /api/leads/count every 3 s, fetch what is new, and try to
//      reopen the stream from the last id seen on every check that reaches the server
//      (checking; offline when the check cannot reach it).
//   3. A full refresh every 60 s whatever happens.
// The highest id passed on (`#lastId`) keeps a lead from being passed on twice, whichever path
// brought it: the stream's replay overlaps the catch-up, and a check can race the stream.

import { api } from './api.js';
import { Emitter } from './events.js';

export const POLL_MS = 3000;
export const FULL_REFRESH_MS = 60000;
// The most leads one /api/leads answer holds. More missed than this are not fetched one by one.
export const MAX_CATCH_UP = 1000;

export class LiveSource extends Emitter {
  #request;
  #EventSource;
  #timers;

  #lastId = 0;         // highest lead id passed on, or known to predate this page
  #primed = false;     // #lastId has been set from /api/leads/count at least once
  #lastCount = null;   // the last /api/leads/count answer's count
  #es = null;          // the open (or opening) stream, if any
  #state = 'checking';
  #pollTimer = null;
  #polling = false;    // a check of the 3 s fallback is under way
  #refreshTimer = null;
  #started = false;
  #stopped = false;

  // The defaults are the browser's; the unit tests pass fakes.
  constructor({ request = api, EventSource = globalThis.EventSource, timers = globalThis } = {}) {
    super();
    this.#request = request;
    this.#EventSource = EventSource;
    this.#timers = timers;
  }

  get state() {
    return this.#state;
  }

  // Starts once `ready` (the first list load) has settled: knowing the newest id before the
  // stream opens means its replay brings only what is new, nothing already on screen is
  // announced as an arrival, and no arrival is wiped out by that first list answer.
  async start(ready) {
    if (this.#started) return;
    this.#started = true;
    await Promise.allSettled([ready, this.#check()]);
    if (this.#stopped) return;
    this.#openStream();
    this.#refreshTimer = this.#timers.setInterval(() => this.#refreshAll(), FULL_REFRESH_MS);
  }

  // For good (the session has ended): no stream, no checks, no more events.
  stop() {
    this.#stopped = true;
    this.closeStream();
    this.#stopPolling();
    if (this.#refreshTimer) this.#timers.clearInterval(this.#refreshTimer);
    this.#refreshTimer = null;
  }

  // Closes the stream (the page is going away) without falling back to checks.
  closeStream() {
    if (this.#es) {
      this.#es.close();
      this.#es = null;
    }
  }

  // Something may have been saved (e.g. after "Sync with Meta"): an open stream brings it by
  // itself, else look now rather than at the next check.
  checkUnlessStreaming() {
    if (!this.#es && !this.#stopped) this.#check();
  }

  #setState(state) {
    if (state === this.#state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #arrive(lead) {
    if (this.#stopped || !lead || lead.id === undefined || lead.id === null) return;
    const id = Number(lead.id);
    // Not newer than the newest seen: a replay overlap or a check that raced the stream.
    if (!Number.isFinite(id) || id <= this.#lastId) return;
    this.#lastId = id;
    this.emit('lead', lead);
  }

  #refresh(detail) {
    if (!this.#stopped) this.emit('refresh', detail);
  }

  #openStream() {
    if (this.#es || this.#stopped) return;
    if (!this.#primed) {
      // Without a known newest id, a replay would announce every old lead as new.
      this.#startPolling();
      return;
    }
    // A new EventSource does not carry the old one's Last-Event-ID, so the id goes in the URL.
    const src = new this.#EventSource('/api/stream?last_event_id=' + encodeURIComponent(String(this.#lastId)));
    this.#es = src;
    src.onopen = () => {
      if (this.#es !== src) return;
      this.#setState('live');
      this.#stopPolling();
    };
    src.addEventListener('lead', (ev) => {
      if (this.#es !== src) return;
      let lead;
      try {
        lead = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      this.#arrive(lead);
    });
    // Only the id comes: the lead's values are gone from the server too.
    src.addEventListener('erased', (ev) => {
      if (this.#es !== src) return;
      let id;
      try {
        id = Number(JSON.parse(ev.data).id);
      } catch (_) {
        return;
      }
      if (Number.isSafeInteger(id) && id > 0) this.emit('erased', id);
    });
    src.addEventListener('refresh', () => {
      if (this.#es !== src) return;
      this.#refreshAll();
    });
    // The session has ended: reconnecting or checking would only meet 401s.
    src.addEventListener('logout', () => {
      if (this.#es !== src) return;
      this.stop();
      this.emit('logout');
    });
    src.onerror = () => {
      if (this.#es !== src) return;
      // Don't leave it to EventSource's own retry: it gives up for good on a non-200 and can't
      // tell us why. Close it and fall back to the 3 s count check, which also reopens it.
      src.close();
      this.#es = null;
      if (this.#state === 'live') this.#setState('checking');
      this.#startPolling();
    };
  }

  #startPolling() {
    if (this.#pollTimer || this.#stopped) return;
    this.#pollTimer = this.#timers.setInterval(() => this.#pollTick(), POLL_MS);
  }

  #stopPolling() {
    if (this.#pollTimer) {
      this.#timers.clearInterval(this.#pollTimer);
      this.#pollTimer = null;
    }
  }

  async #pollTick() {
    if (this.#polling) return;
    this.#polling = true;
    try {
      const ok = await this.#check();
      if (!ok) {
        this.#setState('offline');
        return;
      }
      if (this.#state !== 'live') this.#setState('checking');
      if (!this.#es) this.#openStream();
    } finally {
      this.#polling = false;
    }
  }

  // Asks /api/leads/count whether anything is new and fetches it. Returns false when the server
  // could not be reached.
  async #check() {
    let c;
    try {
      c = await this.#request('/api/leads/count');
    } catch (e) {
      return false;
    }
    const lastId = Number(c.last_id) || 0;
    const count = Number(c.count) || 0;
    const countDropped = this.#lastCount !== null && count < this.#lastCount;
    this.#lastCount = count;
    if (!this.#primed) {
      // First answer: everything up to here existed before this page; nothing to announce.
      this.#primed = true;
      if (lastId > this.#lastId) this.#lastId = lastId;
      return true;
    }
    if (lastId > this.#lastId) {
      const missed = lastId - this.#lastId;
      if (missed > MAX_CATCH_UP) {
        // Too many to announce one by one; take the newest id and reload what is shown.
        this.#lastId = lastId;
        this.#refresh({ full: false, missed });
        return true;
      }
      try {
        const data = await this.#request('/api/leads?' + new URLSearchParams({
          sort: 'received_at', order: 'desc', limit: String(Math.min(MAX_CATCH_UP, missed + 10)),
        }));
        const fresh = (Array.isArray(data.leads) ? data.leads : [])
          .filter((l) => Number(l.id) > this.#lastId)
          .sort((a, b) => Number(a.id) - Number(b.id));
        for (const lead of fresh) this.#arrive(lead);
      } catch (e) {
        // An answer, even an error, means the server is there.
        return Boolean(e && e.status);
      }
    } else if (countDropped) {
      // Leads were deleted: what is shown may hold some of them.
      this.#refresh({ full: false, missed: 0 });
    }
    return true;
  }

  async #refreshAll() {
    await this.#check();
    this.#refresh({ full: true, missed: 0 });
  }
}
