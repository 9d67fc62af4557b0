// Talking to the server: JSON over fetch, the server's own error sentence on failure, and a 401
// taken as "the session has ended". Knows nothing of the page beyond reloading it then.

class ApiError extends Error {
  constructor(message, status, body = null) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.body = body; // the answer's JSON, if any (a 409 carries the lead as it is now)
  }
}

const goneListeners = [];
let gone = false;

// Runs fn once, just before the page reloads because the session has ended.
export function onSessionGone(fn) {
  goneListeners.push(fn);
}

// The session has ended (a 401, or the stream's "logout"): the page goes to the sign-in page.
export function sessionGone() {
  if (gone) return;
  gone = true;
  for (const fn of goneListeners) fn();
  // The server answers GET / with the login page when the session is gone.
  location.reload();
}

export async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin', cache: 'no-store' }, options || {});
  opts.headers = Object.assign({ Accept: 'application/json' }, opts.headers || {});
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError('The server could not be reached.', 0);
  }
  if (res.status === 401) {
    sessionGone();
    throw new ApiError('Your session has ended.', 401);
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  if (!res.ok) {
    const msg = body && typeof body.error === 'string' && body.error
      ? body.error
      : 'The server answered ' + res.status + '.';
    throw new ApiError(msg, res.status, body);
  }
  return body || {};
}
