// cartero's dashboard (docs/dashboard.md). The server sends a page shell; this file fills it
// from the JSON API with the session cookie. Every state change sends the session's CSRF token
// in X-CSRF-Token. Data is put in with textContent, never as markup.
'use strict';

(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';
  const main = document.getElementById('main');
  const flash = document.getElementById('flash');
  const operator = document.querySelector('.who')?.textContent || 'dashboard';
  // SPEC §3.4: technical value → name (the JSON carries names, query filters take values).
  const REASONS = [[0, 'not_defined'], [1, 'user_unknown'], [2, 'invalid_domain'],
    [3, 'unreachable'], [4, 'account_disabled'], [5, 'mailbox_full'],
    [7, 'address_not_specified'], [8, 'denylisted'], [9, 'quarantine'], [10, 'duplicate'],
    [20, 'refused'], [25, 'error_ignored']];
  const POLL_MS = 2000;

  // ---- small helpers ----------------------------------------------------------------------

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid !== undefined && kid !== null) e.append(kid instanceof Node ? kid : String(kid));
    }
    return e;
  }

  // `poll`: a background refresh, which does not count as use of the session (an open tab
  // alone does not keep it alive past its idle time).
  async function api(method, path, body, poll) {
    const headers = { Accept: 'application/json' };
    if (poll) headers['X-Cartero-Poll'] = '1';
    const opts = { method, headers, credentials: 'same-origin' };
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.href = '/ui/login?next=' + encodeURIComponent(location.pathname + location.search);
      throw new Error('The session ended: log in again.');
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
    if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
    return data;
  }

  function say(message, kind) {
    flash.replaceChildren(el('p', { class: kind || 'error', text: message }));
  }

  // Runs an operator action; its error (the API's message) is shown, never swallowed.
  async function act(fn, done) {
    try {
      const msg = await fn();
      if (msg) say(msg, 'ok'); else flash.replaceChildren();
      if (done) await done();
    } catch (e) {
      say(e.message);
    }
  }

  // Calls fn now and then every `ms` after it finished (never two at once) while it answers
  // true, as a background poll (`fn(true)`); a failed refresh is shown and retried. A hidden
  // tab skips its refreshes.
  function every(ms, fn) {
    let first = true;
    const tick = async () => {
      let again = true;
      if (first || !document.hidden) {
        try { again = await fn(!first); } catch (e) { say(e.message); }
      }
      first = false;
      if (again !== false) setTimeout(tick, ms);
    };
    tick();
  }

  const num = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en'));
  const pct = (r) => (r === undefined || r === null ? '–' : `${Number(r).toFixed(1)} %`);
  const when = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC' : '–');
  const reasonName = (v) => (REASONS.find(([n]) => n === Number(v)) || [v, String(v)])[1];

  function table(caption, columns, rows, attrs) {
    const head = el('tr', {}, columns.map(([h]) => el('th', { scope: 'col', text: h })));
    const body = rows.map((r) => el('tr', {}, columns.map(([, f]) => {
      const v = f(r);
      return el('td', {}, v instanceof Node ? v : (v === undefined || v === null ? '' : String(v)));
    })));
    const t = el('table', attrs || {}, el('caption', { text: caption }), el('thead', {}, head),
      el('tbody', {}, body.length ? body : el('tr', {}, el('td', { colspan: columns.length, class: 'empty', text: 'Nothing to show.' }))));
    return el('div', { class: 'scroll' }, t);
  }

  function field(label, input) {
    const id = 'f-' + (input.name || Math.random().toString(36).slice(2));
    input.id = id;
    return el('div', { class: 'field' }, el('label', { for: id, text: label }), input);
  }

  function select(name, options, value) {
    return el('select', { name }, options.map(([v, t]) => el('option', { value: v, text: t, selected: String(v) === String(value ?? '') })));
  }

  const STATE_VERBS = {
    draft: ['analyze'], analyzed: ['analyze', 'start'], running: ['pause', 'stop'],
    paused: ['resume', 'stop'], finished: [], stopped: [],
  };

  // The verb buttons of a delivery in its state; stop asks for a second click.
  function verbButtons(d, after) {
    return el('span', { class: 'verbs' }, (STATE_VERBS[d.state] || []).map((verb) => {
      const b = el('button', { type: 'button', 'data-verb': verb, text: verb[0].toUpperCase() + verb.slice(1) });
      b.addEventListener('click', () => {
        if (verb === 'stop' && b.dataset.armed !== '1') {
          b.dataset.armed = '1';
          b.textContent = 'Confirm stop';
          return;
        }
        b.disabled = true;
        act(async () => {
          await api('POST', `/api/v1/deliveries/${d.id}/${verb}`);
          return `Delivery ${d.id}: ${verb} done.`;
        }, after).finally(() => { b.disabled = false; });
      });
      return b;
    }));
  }

  // Re-renders `into` only when the data changed, so a refresh does not pull a button away
  // from under the pointer.
  function renderIfChanged(into, data, render) {
    const key = JSON.stringify(data);
    if (into.dataset.key === key) return;
    into.dataset.key = key;
    into.replaceChildren(...[render(data)].flat().filter((n) => n !== null && n !== undefined));
  }

  // ---- Deliveries ---------------------------------------------------------------------------

  function createForm(after) {
    const inputs = {
      name: el('input', { name: 'name', required: true }),
      list: el('input', { name: 'list', required: true }),
      from: el('input', { name: 'from', required: true, placeholder: 'news@example.org' }),
      subject: el('input', { name: 'subject', required: true }),
      text: el('textarea', { name: 'text', rows: 4 }),
      html: el('textarea', { name: 'html', rows: 4 }),
      validity: el('input', { name: 'validity', placeholder: '5days' }),
      pool: el('input', { name: 'pool' }),
    };
    const form = el('form', { class: 'grid', id: 'create' },
      field('Name', inputs.name), field('List', inputs.list), field('From', inputs.from),
      field('Subject', inputs.subject), field('Text template', inputs.text),
      field('HTML template', inputs.html), field('Validity', inputs.validity),
      field('Egress pool', inputs.pool), el('button', { type: 'submit', text: 'Create draft' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = {};
      for (const [k, i] of Object.entries(inputs)) if (i.value.trim()) body[k] = i.value;
      act(async () => {
        const d = await api('POST', '/api/v1/deliveries', body);
        form.reset();
        return `Draft ${d.id} created: analyze it, then start it.`;
      }, after);
    });
    return el('details', { class: 'panel' }, el('summary', { text: 'New delivery' }), form);
  }

  function pageDeliveries() {
    const list = el('div', { id: 'deliveries' });
    let refresh = async () => {};
    main.replaceChildren(el('h1', { text: 'Deliveries' }), createForm(() => refresh()), list);
    const columns = [
      ['ID', (s) => el('a', { href: `/ui/deliveries/${s.delivery.id}`, text: s.delivery.id })],
      ['Name', (s) => el('a', { href: `/ui/deliveries/${s.delivery.id}`, text: s.delivery.name })],
      ['State', (s) => el('span', { class: `state ${s.delivery.state}`, text: s.delivery.state })],
      ['To deliver', (s) => num(s.efs.to_deliver)],
      ['Sent', (s) => num(s.efs.sent.count)],
      ['Failed', (s) => num(s.efs.failed.count)],
      ['Success', (s) => pct(s.efs.success.rate)],
      ['Final', (s) => (s.final ? 'yes' : 'no')],
      ['Actions', (s) => verbButtons(s.delivery, () => refresh())],
    ];
    refresh = async (poll) => {
      const all = (await api('GET', '/api/v1/deliveries', undefined, poll)).filter((d) => d.kind !== 'transactional');
      all.sort((a, b) => b.id - a.id);
      const statuses = await Promise.all(all.slice(0, 100).map((d) => api('GET', `/api/v1/deliveries/${d.id}`, undefined, poll)));
      renderIfChanged(list, statuses, (rows) => table('Campaign deliveries, newest first (at most 100)', columns, rows, { id: 'deliveries-table' }));
    };
    every(3000, async (poll) => { await refresh(poll); return true; });
  }

  // ---- A delivery's dashboard ---------------------------------------------------------------

  const EFS = [['to_deliver', 'To deliver'], ['success', 'Success'], ['pending', 'Pending'],
    ['taken', 'Taken by the MTA'], ['sent', 'Sent'], ['failed', 'Failed'], ['ignored', 'Ignored'],
    ['hard_bounces', 'Hard bounces'], ['soft_bounces', 'Soft bounces'], ['complaints', 'Complaints'],
    ['unsubscribes', 'Unsubscribes'], ['new_quarantines', 'New quarantines']];
  const LEGACY = [['to_deliver', 'To deliver'], ['success', 'Success'], ['pending', 'Pending'],
    ['sent', 'Sent'], ['failed', 'Failed']];

  function kpis(view, name, names) {
    return el('div', { class: 'kpis' }, names.map(([k, label]) => {
      const f = view[k];
      const figure = typeof f === 'object' && f !== null;
      const value = figure ? (k === 'success' ? pct(f.rate) : num(f.count)) : num(f);
      return el('div', { class: 'kpi', 'data-kpi': `${name}.${k}` },
        el('span', { class: 'label', text: label }), el('span', { class: 'value', text: value }),
        figure && k !== 'success' ? el('span', { class: 'rate', text: pct(f.rate) }) : null);
    }));
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const kid of kids) e.append(kid);
    return e;
  }

  // A rounded axis maximum and its ticks.
  function ticks(max) {
    if (max <= 0) return [0, 1];
    const raw = max / 4;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = 0; v <= max + step / 2; v += step) out.push(v);
    if (out[out.length - 1] < max) out.push(out[out.length - 1] + step);
    return out;
  }

  const SERIES = [['relayed', 'Relayed (taken by the MTA)', 'c-relayed'],
    ['sent', 'Delivered (Sent)', 'c-sent'], ['failed', 'Failed', 'c-failed']];

  function chart(t, hours) {
    const W = 720, H = 260, L = 56, R = 12, T = 12, B = 40;
    const pts = t.points;
    const stepMin = t.step_ms / 60000;
    const ys = ticks(Math.max(0, ...pts.flatMap((p) => [p.relayed, p.sent, p.failed])));
    const ymax = ys[ys.length - 1] || 1;
    const x = (i) => L + (pts.length <= 1 ? 0 : (i * (W - L - R)) / (pts.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / ymax);
    const totals = SERIES.map(([k]) => pts.reduce((s, p) => s + p[k], 0));
    const label = `Throughput over the last ${hours} h, in messages per ${stepMin} min: ` +
      SERIES.map(([, n], i) => `${num(totals[i])} ${n.toLowerCase()}`).join(', ');
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart' });
    for (const v of ys) {
      g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      g.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, num(v)));
    }
    const every = Math.max(1, Math.ceil(pts.length / 6));
    pts.forEach((p, i) => {
      if (i % every !== 0 && i !== pts.length - 1) return;
      const hm = new Date(p.at).toISOString().slice(11, 16);
      const anchor = i === pts.length - 1 ? 'end' : (i === 0 ? 'start' : 'middle');
      g.append(svg('text', { x: x(i), y: H - B + 16, 'text-anchor': anchor, class: 'tick' }, hm));
    });
    g.append(svg('text', { x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis' }, 'time (UTC)'));
    g.append(svg('text', { x: 12, y: (T + H - B) / 2, transform: `rotate(-90 12 ${(T + H - B) / 2})`, 'text-anchor': 'middle', class: 'axis' }, `messages / ${stepMin} min`));
    for (const [k, , cls] of SERIES) {
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(p[k]).toFixed(1)}`).join('');
      g.append(svg('path', { d, class: `line ${cls}` }));
    }
    const legend = el('ul', { class: 'legend' }, SERIES.map(([, n, cls], i) =>
      el('li', {}, el('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), `${n}: ${num(totals[i])}`)));
    // SPEC §3.6 also wants bytes per second: the window's average and its busiest step.
    const bytes = pts.reduce((s, p) => s + p.bytes, 0);
    const peak = Math.max(0, ...pts.map((p) => p.bytes)) / (t.step_ms / 1000);
    const rate = (bps) => (bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} MB/s` : `${(bps / 1e3).toFixed(1)} kB/s`);
    const volume = el('p', { class: 'hint', id: 'bytes' },
      `Relayed ${(bytes / 1e6).toFixed(1)} MB: ${rate(bytes / (hours * 3600))} on average over ${hours} h, ` +
      `${rate(peak)} in the busiest ${stepMin} min.`);
    return [g, legend, volume];
  }

  function pageDelivery(id) {
    const head = el('div', { id: 'head' });
    const efs = el('section', { 'aria-labelledby': 'h-efs' });
    const legacy = el('section', { 'aria-labelledby': 'h-legacy' });
    const plot = el('div', { id: 'chart' });
    const breakdown = el('div', { class: 'two' });
    const qualification = el('div');
    let hours = 1;
    const windows = el('div', { class: 'windows', role: 'group', 'aria-label': 'Chart window' }, [1, 3, 24].map((h) =>
      el('button', { type: 'button', 'aria-pressed': String(h === hours), text: `${h} h`, onclick: (ev) => {
        hours = h;
        for (const b of windows.children) b.setAttribute('aria-pressed', String(b === ev.target));
        refresh();
      } })));
    main.replaceChildren(head, el('h2', { id: 'h-efs', text: 'KPIs' }), efs,
      el('h2', { id: 'h-legacy', text: 'Legacy view' }), legacy,
      el('h2', { text: 'Throughput' }), windows, plot, breakdown,
      el('h2', { text: 'Qualification of failure replies' }), qualification);
    let last = null;
    const refresh = async (poll) => {
      const [s, t, q] = await Promise.all([
        api('GET', `/api/v1/deliveries/${id}`, undefined, poll),
        api('GET', `/api/v1/deliveries/${id}/throughput?hours=${hours}`, undefined, poll),
        api('GET', `/api/v1/deliveries/${id}/qualification`, undefined, poll)]);
      last = s;
      const d = s.delivery;
      document.title = `${d.name} · cartero`;
      renderIfChanged(head, s, () => [
        el('h1', { text: d.name }),
        el('p', { class: 'meta' }, el('span', { class: `state ${d.state}`, id: 'state', text: d.state }), ' ',
          el('span', { class: s.final ? 'final yes' : 'final no', id: 'final', text: s.final ? 'final' : 'not final yet' }),
          ` · from ${d.from} · subject “${d.subject}” · started ${when(d.started_at)}`),
        el('p', {}, verbButtons(d, refresh), ' ', el('a', { href: `/ui/deliveries/${id}/logs`, text: 'Delivery log' })),
        s.analysis ? el('p', { class: 'hint', text: `Analysis: ${num(s.analysis.counts.candidates)} of ${num(s.analysis.recipients)} recipients…` }) : null]);
      renderIfChanged(efs, s.efs, (v) => kpis(v, 'efs', EFS));
      renderIfChanged(legacy, s.legacy, (v) => kpis(v, 'legacy', LEGACY));
      renderIfChanged(plot, [t, hours], () => chart(t, hours));
      const domains = new Map();
      for (const [dom, n] of Object.entries(s.kpis.sent_by_domain)) domains.set(dom, { domain: dom, sent: n, failed: 0 });
      for (const [dom, n] of Object.entries(s.kpis.failed_by_domain)) {
        const line = domains.get(dom) || { domain: dom, sent: 0, failed: 0 };
        line.failed = n;
        domains.set(dom, line);
      }
      const byDomain = [...domains.values()].sort((a, b) => (b.sent + b.failed) - (a.sent + a.failed)).slice(0, 20);
      renderIfChanged(breakdown, [byDomain, s.efs.failed_by_reason], () => [
        table('By domain (top 20)', [['Domain', (r) => r.domain], ['Sent', (r) => num(r.sent)], ['Failed', (r) => num(r.failed)]], byDomain),
        table('Failures by reason', [['Reason', (r) => r.label], ['Rows', (r) => num(r.count)], ['Share', (r) => pct(r.rate)]], s.efs.failed_by_reason)]);
      renderIfChanged(qualification, q.lines, (lines) => table('Normalized replies, most rows first', [
        ['Reply', (l) => l.text], ['Type', (l) => l.type], ['Reason', (l) => l.reason],
        ['Class', (l) => l.class], ['Rule', (l) => l.rule], ['Rows', (l) => num(l.rows)]], lines));
    };
    // Polls until the figures are final and the delivery will not move again.
    every(POLL_MS, async (poll) => {
      await refresh(poll);
      return !(last && last.final && ['finished', 'stopped'].includes(last.delivery.state));
    });
  }

  // ---- A delivery's log ---------------------------------------------------------------------

  function pageLogs(id) {
    const params = new URLSearchParams(location.search);
    const inputs = {
      status: select('status', [['', 'any'], ['pending', 'pending'], ['taken', 'taken'], ['sent', 'sent'], ['failed', 'failed'], ['ignored', 'ignored']], params.get('status')),
      reason: select('reason', [['', 'any'], ...REASONS], params.get('reason')),
      domain: el('input', { name: 'domain', value: params.get('domain') || '' }),
      address: el('input', { name: 'address', value: params.get('address') || '', placeholder: 'start of the address' }),
    };
    const rows = el('div', { id: 'log-rows' });
    const pager = el('div', { class: 'pager' });
    const cursors = [null];
    const form = el('form', { class: 'filters' }, field('Status', inputs.status), field('Reason', inputs.reason),
      field('Domain', inputs.domain), field('Address', inputs.address), el('button', { type: 'submit', text: 'Filter' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new URLSearchParams();
      for (const [k, i] of Object.entries(inputs)) if (i.value.trim()) q.set(k, i.value.trim());
      history.replaceState(null, '', `${location.pathname}${q.toString() ? '?' + q : ''}`);
      cursors.length = 1;
      refresh();
    });
    main.replaceChildren(el('h1', {}, el('a', { href: `/ui/deliveries/${id}`, text: `Delivery ${id}` }), ' · log'), form, rows, pager);
    const lastReply = (r) => (r.attempts.length ? r.attempts[r.attempts.length - 1].text : (r.failure ? r.failure.text : ''));
    const history_ = (r) => (r.attempts.length
      ? el('details', {}, el('summary', { text: `${r.attempts.length} attempt${r.attempts.length > 1 ? 's' : ''}` }),
        el('ol', {}, r.attempts.map((a) => el('li', { text: `${when(a.at)} ${a.kind}: ${a.text}` }))))
      : '–');
    const columns = [['Row', (r) => r.id], ['Address', (r) => r.address], ['Status', (r) => el('span', { class: `status ${r.status}`, text: r.status })],
      ['Reason', (r) => (r.failure ? r.failure.reason : '')], ['Last reply', lastReply], ['Attempts', history_]];
    const refresh = async (poll) => {
      const q = new URLSearchParams(location.search);
      q.set('limit', '50');
      const at = cursors[cursors.length - 1];
      if (at) {
        q.set('after', at.id);
        if (at.address) q.set('after_address', at.address);
      }
      const page = await api('GET', `/api/v1/deliveries/${id}/logs?${q}`, undefined, poll);
      renderIfChanged(rows, page.rows, (r) => table(`Rows ${cursors.length > 1 ? '(page ' + cursors.length + ')' : ''}`, columns, r, { id: 'log-table' }));
      renderIfChanged(pager, [cursors.length, page.next], () => [
        cursors.length > 1 ? el('button', { type: 'button', text: 'Previous page', onclick: () => { cursors.pop(); refresh(); } }) : null,
        page.next ? el('button', { type: 'button', text: 'Next page', onclick: () => { cursors.push(page.next); refresh(); } }) : null]);
    };
    every(POLL_MS, async (poll) => { await refresh(poll); return true; });
  }

  // ---- Quarantine ---------------------------------------------------------------------------

  function pageQuarantine() {
    const inputs = {
      status: select('status', [['quarantine', 'quarantine'], ['denylisted', 'denylisted'], ['with_errors', 'with errors']], 'quarantine'),
      reason: select('reason', [['', 'any'], ...REASONS], ''),
      domain: el('input', { name: 'domain' }),
      text: el('input', { name: 'text', placeholder: 'part of the last reply' }),
    };
    const why = el('input', { name: 'why', placeholder: 'kept in the audit trail', required: true });
    const list = el('div', { id: 'addresses' });
    const bulk = el('div', { class: 'bulk' });
    const audit = el('div', { id: 'audit' });
    const filterForm = el('form', { class: 'filters' }, Object.entries({ Status: inputs.status, Reason: inputs.reason, Domain: inputs.domain, 'Reply text': inputs.text }).map(([l, i]) => field(l, i)),
      el('button', { type: 'submit', text: 'Search' }));
    filterForm.addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });
    main.replaceChildren(el('h1', { text: 'Quarantine' }), filterForm, field('Why release', why), bulk, list,
      el('h2', { text: 'Releases' }), audit);
    const needWhy = () => {
      if (!why.value.trim()) throw new Error('Say why before releasing: releases are audited.');
      return why.value.trim();
    };
    const releaseFilter = () => {
      const f = { statuses: [inputs.status.value] };
      if (inputs.reason.value) f.reason = reasonName(inputs.reason.value);
      if (inputs.domain.value.trim()) f.domain = inputs.domain.value.trim();
      if (inputs.text.value.trim()) f.text_contains = inputs.text.value.trim();
      return f;
    };
    const columns = [['Address', (a) => a.address], ['Status', (a) => a.status], ['Reason', (a) => a.reason || ''],
      ['Errors', (a) => num(a.error_count)], ['Last error', (a) => (a.last_error ? a.last_error.text : '')],
      ['Since', (a) => when(a.since)],
      ['', (a) => el('button', { type: 'button', 'data-release': a.address, text: 'Release', onclick: () => act(async () => {
        await api('POST', `/api/v1/addresses/${encodeURIComponent(a.address)}/release`, { actor: operator, why: needWhy() });
        return `${a.address} released.`;
      }, refresh) })]];
    const preview = el('button', { type: 'button', text: 'Preview bulk release', onclick: () => act(async () => {
      const f = releaseFilter();
      const r = await api('POST', '/api/v1/quarantine/release', { actor: operator, why: needWhy(), filter: f, dry_run: true });
      bulk.replaceChildren(preview, ' ', el('button', { type: 'button', id: 'confirm-release', text: `Release ${num(r.count)} addresses`, onclick: () => act(async () => {
        const done = await api('POST', '/api/v1/quarantine/release', { actor: operator, why: needWhy(), filter: f });
        bulk.replaceChildren(preview);
        return `Released ${num(done.count)} addresses.`;
      }, refresh) }));
    }) });
    bulk.replaceChildren(preview);
    const refresh = async (poll) => {
      const q = new URLSearchParams({ status: inputs.status.value, limit: '100' });
      if (inputs.reason.value) q.set('reason', inputs.reason.value);
      if (inputs.domain.value.trim()) q.set('domain', inputs.domain.value.trim());
      if (inputs.text.value.trim()) q.set('text', inputs.text.value.trim());
      const [page, releases] = await Promise.all([api('GET', `/api/v1/quarantine?${q}`, undefined, poll), api('GET', '/api/v1/quarantine/releases', undefined, poll)]);
      renderIfChanged(list, page.addresses, (rows) => table('Addresses (first 100 in address order)', columns, rows, { id: 'quarantine-table' }));
      renderIfChanged(audit, releases, (rows) => table('The last 100 releases', [['When', (r) => when(r.at)], ['Who', (r) => r.actor],
        ['Why', (r) => r.why], ['Addresses', (r) => num(r.count)], ['Filter', (r) => JSON.stringify(r.filter)]], rows));
    };
    every(5000, async (poll) => { await refresh(poll); return true; });
  }

  // ---- Transactional and MTA ----------------------------------------------------------------

  function pageTransactional() {
    const box = el('div');
    main.replaceChildren(el('h1', { text: 'Transactional' }), box);
    every(3000, async (poll) => {
      const [templates, page, outbox] = await Promise.all([api('GET', '/api/v1/transactional/templates', undefined, poll),
        api('GET', '/api/v1/transactional/messages?limit=50', undefined, poll), api('GET', '/api/v1/transactional/outbox', undefined, poll)]);
      renderIfChanged(box, [templates, page, outbox], () => [
        el('h2', { text: 'Outbox' }),
        el('p', { id: 'outbox' }, `${num(outbox.depth)} calls stored and not yet taken by the MTA`,
          outbox.depth ? `; the oldest waits since ${when(outbox.oldest_at)}` : ''),
        el('h2', { text: 'Templates' }),
        table('Templates and the version in force', [['Template', (t) => t.name], ['Version', (t) => t.current.version],
          ['Versions', (t) => t.versions.length], ['Delivery', (t) => el('a', { href: `/ui/deliveries/${t.current.delivery}`, text: t.current.delivery })],
          ['Since', (t) => when(t.current.created_at)]], templates, { id: 'templates-table' }),
        el('h2', { text: 'Calls' }),
        table('Calls in id order (the first 50)', [['Call', (m) => m.id], ['Template', (m) => `${m.template} v${m.version}`],
          ['Address', (m) => m.row.address], ['Status', (m) => el('span', { class: `status ${m.status}`, text: m.status })],
          ['Last reply', (m) => (m.row.attempts.length ? m.row.attempts[m.row.attempts.length - 1].text : '')],
          ['Received', (m) => when(m.created_at)], ['Idempotency key', (m) => m.idempotency_key || '']], page.messages, { id: 'calls-table' })]);
      return true;
    });
  }

  const rateText = (l) => (l.max_message_rate_per_hour === null ? 'unlimited' : num(Math.round(l.max_message_rate_per_hour)));

  function pageMta() {
    const box = el('div');
    const scope = el('input', { name: 'scope', placeholder: 'domain:example.net', required: true });
    const dur = el('input', { name: 'for', placeholder: '2h (empty: until resumed)' });
    const reason = el('input', { name: 'reason', placeholder: 'operator' });
    const form = el('form', { class: 'filters' }, field('Scope', scope), field('For', dur), field('Reason', reason),
      el('button', { type: 'submit', text: 'Suspend' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = { scope: scope.value.trim() };
      if (dur.value.trim()) body.for = dur.value.trim();
      body.reason = reason.value.trim() || `operator ${operator}`;
      act(async () => { await api('POST', '/api/v1/shaping/suspend', body); return `${body.scope} suspended.`; }, refresh);
    });
    main.replaceChildren(el('h1', { text: 'MTA' }), el('h2', { text: 'Suspend' }), form, box);
    const refresh = async (poll) => {
      const [queue, shaping] = await Promise.all([api('GET', '/api/v1/queue', undefined, poll), api('GET', '/api/v1/shaping', undefined, poll)]);
      renderIfChanged(box, [queue, shaping], () => [
        el('h2', { text: `Queue: ${num(queue.recipients)} recipients` }),
        table('By destination domain', [['Domain', (d) => d.domain], ['Recipients', (d) => num(d.recipients)],
          ['Oldest', (d) => when(d.oldest)], ['Next attempt', (d) => when(d.next_attempt)], ['Last reply', (d) => d.last_reply || '']],
        queue.domains, { id: 'domains-table' }),
        table('Ready queues by (source, site)', [['Source', (q) => q.source], ['Site', (q) => q.site], ['Ready', (q) => num(q.ready)],
          ['Connections', (q) => num(q.connections)], ['Hosts', (q) => q.hosts.join(', ')]], queue.sites),
        el('h2', { text: 'Suspensions' }),
        table('Suspended scopes', [['Scope', (s) => s.scope], ['Since', (s) => when(s.since)], ['Until', (s) => (s.until ? when(s.until) : 'resumed by hand')],
          ['Why', (s) => s.reason], ['', (s) => el('button', { type: 'button', 'data-resume': s.scope, text: 'Resume', onclick: () => act(async () => {
            await api('POST', '/api/v1/shaping/resume', { scope: s.scope });
            return `${s.scope} resumed.`;
          }, refresh) })]], shaping.suspensions, { id: 'suspensions-table' }),
        el('h2', { text: `Shaping (${shaping.adaptive ? 'adaptive' : 'fixed'})` }),
        table('Queues: live limits / configured limits', [['Source', (q) => q.source], ['Site', (q) => q.site],
          ['Domain', (q) => q.domain], ['Provider', (q) => q.provider || ''],
          ['Connections open', (q) => num(q.open_connections)],
          ['Max connections', (q) => `${num(q.live.max_connections)} / ${num(q.configured.max_connections)}`],
          ['Messages per hour', (q) => `${rateText(q.live)} / ${rateText(q.configured)}`],
          ['Messages per connection', (q) => `${num(q.live.max_messages_per_connection)} / ${num(q.configured.max_messages_per_connection)}`],
          ['Throttled by', (q) => (q.throttled_by ? `${q.throttled_by} until ${when(q.throttled_until)}` : '')]],
        shaping.queues, { id: 'shaping-table' }),
        table('Warm-up stages', [['Source', (w) => w.source], ['Provider', (w) => w.provider], ['Stage', (w) => w.stage + 1],
          ['Daily cap', (w) => (w.cap === null ? 'warmed up' : num(w.cap))], ['Taken today', (w) => num(w.taken_today)],
          ['Delivered today', (w) => num(w.delivered_today)]], shaping.warmup)]);
    };
    every(3000, async (poll) => { await refresh(poll); return true; });
  }

  const PAGES = { deliveries: pageDeliveries, delivery: pageDelivery, logs: pageLogs,
    quarantine: pageQuarantine, transactional: pageTransactional, mta: pageMta };
  const page = PAGES[main?.dataset.page];
  if (page) page(main.dataset.id);
})();
