// DOM helpers shared by the portal's modules. Every value that came from the node or a
// record goes in through textContent: the page's CSP requires Trusted Types with no
// policy, so an HTML sink would throw rather than render.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// A button whose action's failure is shown where the patient looks (the page's error
// line, or the place given), and which cannot be pressed twice while its action runs.
export function button(parent, label, className, action, errorTarget = () => $('error')) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.className = className;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await action(); } catch (error) { errorTarget().textContent = error.message; } finally { b.disabled = false; }
  });
  parent.appendChild(b);
  return b;
}

export function badge(kind, text) {
  return el('span', `badge ${kind}`, text);
}

export function duration(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  return `${Math.round(seconds / 60)} min`;
}

// Ledger times are nanoseconds, beyond a double's exact range: a millisecond is enough
// to show a date.
export function dateOfNs(ns) {
  const date = new Date(Number(ns) / 1e6);
  return Number.isNaN(date.getTime()) ? 'an unknown time' : date.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
