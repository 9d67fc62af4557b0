// Where leads come from. Knows nothing of the page: it tells whoever listens
//   "lead"    (lead)              a lead not passed on before, oldest first;
//   "update"  (lead)              a lead someone changed (status, owner, a note): the whole
//                                 lead as it is now, to replace the one shown;
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
// New leads, changes and erasures share one id sequence on the stream (a new lead's event id
// is its id; a change or an erasure takes the next number). The highest event id passed on (`#lastId`) keeps an event
// from being passed on twice, whichever path brought it: the stream's replay overlaps the
// catch-up, and a check can race the stream. `#lastLeadId` does the same for leads the checks
// fetch. Ids have gaps where changes took numbers, so how many leads arrived is counted from
// /api/leads/count's `count`, never from the difference of ids.

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

  #lastId = 0;         // highest event id passed on, or known to predate this page
  #lastLeadId = 0;     // highest lead id passed on, or known to predate this page
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

  // A new lead, from the stream (with its event id) or a check (its id is its event id).
  #arrive(lead, eventId = Number(lead && lead.id)) {
    if (this.#stopped || !lead || lead.id === undefined || lead.id === null) return;
    const id = Number(lead.id);
    // Not newer than the newest seen: a replay overlap or a check that raced the stream.
    if (!Number.isFinite(id) || id <= this.#lastLeadId || eventId <= this.#lastId) return;
    this.#lastLeadId = id;
    if (Number.isFinite(eventId)) this.#lastId = Math.max(this.#lastId, eventId);
    this.emit('lead', lead);
  }

  // A change to a lead, from the stream.
  #changed(lead, eventId) {
    if (this.#stopped || !lead || lead.id === undefined || lead.id === null) return;
    if (!Number.isFinite(eventId) || eventId <= this.#lastId) return;
    this.#lastId = eventId;
    this.emit('update', lead);
  }

  // A lead erased, from the stream.
  #erased(id, eventId) {
    if (this.#stopped) return;
    if (!Number.isFinite(eventId) || eventId <= this.#lastId) return;
    this.#lastId = eventId;
    this.emit('erased', id);
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
    const parse = (ev) => {
      if (this.#es !== src) return null;
      try {
        return JSON.parse(ev.data);
      } catch (_) {
        return null;
      }
    };
    src.addEventListener('lead', (ev) => {
      const lead = parse(ev);
      if (lead) this.#arrive(lead, Number(ev.lastEventId || lead.id));
    });
    src.addEventListener('update', (ev) => {
      const lead = parse(ev);
      if (lead) this.#changed(lead, Number(ev.lastEventId));
    });
    // Only the id comes: the lead's values are gone from the server too. The erasure has an
    // event id of its own in the one sequence.
    src.addEventListener('erased', (ev) => {
      const data = parse(ev);
      const id = Number(data && data.id);
      if (Number.isSafeInteger(id) && id > 0) this.#erased(id, Number(ev.lastEventId));
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
    const lastLeadId = Number(c.last_id) || 0;
    // A server from before changes existed has no event ids: its lead ids are its event ids.
    const lastId = Number(c.last_event_id) || lastLeadId;
    const count = Number(c.count) || 0;
    const before = this.#lastCount;
    const countDropped = before !== null && count < before;
    if (!this.#primed) {
      this.#lastCount = count;
      // First answer: everything up to here existed before this page; nothing to announce.
      this.#primed = true;
      if (lastId > this.#lastId) this.#lastId = lastId;
      if (lastLeadId > this.#lastLeadId) this.#lastLeadId = lastLeadId;
      return true;
    }
    if (lastId > this.#lastId) {
      // New leads are counted, not told from the ids (changes took numbers in between).
      const missed = before === null ? 0 : Math.max(0, count - before);
      const changedToo = lastId - this.#lastId > missed;
      if (missed > MAX_CATCH_UP) {
        // Too many to announce one by one; take the newest ids and reload what is shown.
        this.#lastCount = count;
        this.#lastId = lastId;
        this.#lastLeadId = Math.max(this.#lastLeadId, lastLeadId);
        this.#refresh({ full: false, missed });
        return true;
      }
      if (missed > 0) {
        try {
          const data = await this.#request('/api/leads?' + new URLSearchParams({
            sort: 'received_at', order: 'desc', limit: String(Math.min(MAX_CATCH_UP, missed + 10)),
          }));
          const fresh = (Array.isArray(data.leads) ? data.leads : [])
            .filter((l) => Number(l.id) > this.#lastLeadId)
            .sort((a, b) => Number(a.id) - Number(b.id));
          for (const lead of fresh) this.#arrive(lead, Number(lead.id));
        } catch (e) {
          // Not caught up: the next check (or the stream's replay) tries again. An answer,
          // even an error, means the server is there.
          return Boolean(e && e.status);
        }
      }
      this.#lastCount = count;
      this.#lastId = Math.max(this.#lastId, lastId);
      // Changes cannot be fetched one by one: what is shown is reloaded instead.
      if (changedToo) this.#refresh({ full: false, missed: 0 });
    } else if (countDropped) {
      this.#lastCount = count;
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
