// Plumbing for "something happened": a tiny emitter (so modules that know nothing of each other
// can be wired together in main.js), and two ways to turn a burst of calls into one.

export class Emitter {
  #listeners = new Map();

  on(type, fn) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, []);
    this.#listeners.get(type).push(fn);
    return this;
  }

  emit(type, ...args) {
    for (const fn of this.#listeners.get(type) || []) fn(...args);
  }
}

// Runs fn once the calls have stopped for `ms`.
export function debounce(fn, ms) {
  let t = null;
  return function () {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

// Runs fn `ms` after the first call of a burst; later calls join that run. Unlike a debounce,
// a steady flow of leads cannot postpone it for ever.
export function soon(fn, ms) {
  let t = null;
  return function () {
    if (t) return;
    t = setTimeout(() => {
      t = null;
      fn();
    }, ms);
  };
}
