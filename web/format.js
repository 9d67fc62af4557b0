// How numbers, times and names read on the page. Pure functions: no DOM, no state.

const numFmt = new Intl.NumberFormat();
export const fmtNum = (n) => numFmt.format(Number(n) || 0);

export function plural(n, one, many) {
  return fmtNum(n) + ' ' + (Number(n) === 1 ? one : many);
}

export function str(v) {
  return v === undefined || v === null ? '' : String(v);
}

const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
// The year only when it is not this year: "28 Nov, 15:25" reads faster in a long list.
const thisYearFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const fullDateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  timeZoneName: 'short',
});
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

function parseTime(s) {
  if (!s) return null;
  const d = new Date(s);
  return isNaN(d.getTime()) ? null : d;
}

export function fmtTime(s) {
  const d = parseTime(s);
  if (!d) return s ? String(s) : '';
  return (d.getFullYear() === new Date().getFullYear() ? thisYearFmt : dateTimeFmt).format(d);
}

export function fmtFullTime(s) {
  const d = parseTime(s);
  return d ? fullDateTimeFmt.format(d) : (s ? String(s) : '');
}

export function ago(s) {
  const d = parseTime(s);
  if (!d) return '';
  const secs = Math.round((Date.now() - d.getTime()) / 1000);
  if (secs < 45) return 'just now';
  const mins = Math.round(secs / 60);
  if (mins < 60) return mins + ' min ago';
  const hours = Math.round(mins / 60);
  if (hours < 48) return hours + ' h ago';
  return Math.round(hours / 24) + ' days ago';
}

// A "YYYY-MM-DD" day as a local date (no time zone shift).
export function dayLabel(day) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || '');
  if (!m) return String(day || '');
  return dayFmt.format(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
}

// "full_name" -> "Full name"
export function humanize(key) {
  const s = String(key).replace(/_/g, ' ').replace(/\s+/g, ' ').trim();
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : String(key);
}
