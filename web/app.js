// Doppelganger debugger: the things of an application, one of them live over the
// gateway's single-thing WebSocket, and a form to set desired values.
// Plain modern JavaScript, no framework, no build step, nothing from elsewhere.
// Everything from the server is rendered with textContent / attributes, never innerHTML.
//
// Stable hooks for tests (ids unless marked [attr]):
//   #app-input, #token-input, #conn-form (submit = open)   application and token
//   #selector-input, #selector-form (submit = load)        label selector of the list
//   #thing-filter                                          client-side filter of the list
//   #things-status                                         "N things" / errors; [attr] data-state = loading|ok|error
//   #thing-list > li > button[data-testid=thing-item][data-thing=NAME]
//       (aria-current="true" when selected; hidden li when filtered out)
//   #thing-empty / #thing-view                             no thing selected / the thing
//   #thing-name, #thing-generation                         header of the thing
//   #conn-status [attr] data-state = idle|connecting|connected|reconnecting|closed|error
//   #conn-detail (backoff countdown, close reason), #reconnect-btn
//   #notices > li[data-kind=lag|deleted|missing|error|info]  (button.dismiss inside)
//   tables, one row per entry: tr[data-key=KEY] (feature tables also data-feature=KEY),
//   cells td[data-field=FIELD]; a tr.empty-row when there is nothing:
//     #reported-table   value, lastUpdate
//     #desired-table    value, mode, method, state, validUntil, lastUpdate, actions
//                       (buttons [data-testid=desired-edit], [data-testid=desired-clear])
//     #synthetic-table  value, definition, lastUpdate
//     #changed-table    kind, lastLog, code
//     #timers-table     period, stopped, lastStarted, lastRun, lastLog, code
//     #deleting-table   kind, code
//     #labels-table, #annotations-table   value
//     #metadata-table   value; keys application, name, uid, generation, resourceVersion,
//                       creationTimestamp, deletionTimestamp, waker, outbox, schema
//   a cell whose value changed gets class "flash" for a moment
//   #desired-form: #desired-feature (datalist #feature-options), #desired-value (JSON),
//     #desired-valid-for, #desired-set (submit), #desired-clear; #desired-result
//     [attr] data-state = sent|applied|error|timeout
//   #raw-details (details) > #raw-json (pre); #log-details > #event-log > li
//   window.dgDebugger: {state, conn} for poking from a console or a test
//
// URL hash: #app=APP&thing=NAME&selector=SEL (URLSearchParams encoding). The token is kept
// in sessionStorage only (never in the URL): `?token=` on the WebSocket, `Authorization:
// Bearer` on fetch.

const $ = (id) => document.getElementById(id);
const API = location.pathname.replace(/\/debugger(\/.*)?$/, '') + '/api/v1alpha1/things';
const FLASH_MS = 1500;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const PENDING_TIMEOUT_MS = 5000;
const LOG_MAX = 100;

const state = {
	app: 'default',
	token: sessionStorage.getItem('dg-debugger-token') || '',
	selector: '',
	thingName: null,      // the selected thing
	thing: null,          // its latest version (null until initial)
	wsDoc: null,          // the version this socket last received: the base of the next patch
	deleted: false,
	lag: 0,               // updates missed on this thing's connections (lag messages)
	flash: false,         // false while rendering the first version of a thing
	things: [],           // the list
	pending: null,        // {feature, value, timer} of the last setDesiredValues
	listSeq: 0,
	listLoaded: false,
};

const conn = {
	ws: null,
	attempt: 0,
	openedAt: 0,
	retryTimer: null,
	tickTimer: null,
	missingTimer: null,
	retryAt: 0,
};

// ---------------------------------------------------------------- DOM helpers

// h('td', {dataset: {field: 'x'}, className: 'y'}, 'text', node, ...): an element.
function h(tag, props, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(props || {})) {
		if (v === undefined || v === null) continue;
		if (k === 'dataset') Object.assign(el.dataset, v);
		else if (k === 'className') el.className = v;
		else if (k === 'text') el.textContent = v;
		else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
		else el.setAttribute(k, v);
	}
	for (const c of children) {
		if (c === undefined || c === null || c === false) continue;
		el.append(c instanceof Node ? c : String(c));
	}
	return el;
}

function flash(el) {
	if (!state.flash) return;
	el.classList.remove('flash');
	void el.offsetWidth; // restart the animation
	el.classList.add('flash');
	clearTimeout(el._flashTimer);
	el._flashTimer = setTimeout(() => el.classList.remove('flash'), FLASH_MS);
}

function jsonText(v, pretty) {
	if (v === undefined) return '';
	const s = JSON.stringify(v);
	if (pretty && s && s.length > 60 && typeof v === 'object' && v !== null) return JSON.stringify(v, null, 2);
	return s;
}

function typeClass(v) {
	if (v === null) return 'j-null';
	if (Array.isArray(v)) return 'j-array';
	return 'j-' + typeof v;
}

function age(ts) {
	const t = Date.parse(ts);
	if (Number.isNaN(t)) return '';
	const s = Math.round((Date.now() - t) / 1000);
	const abs = Math.abs(s);
	const span = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` :
		abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
	return s >= 0 ? `${span} ago` : `in ${span}`;
}

// A cell descriptor: {field, text, cls, title, sub, code, node}
//   text: the main text (compared for flashing); sub: a second, smaller line;
//   code: put text in a collapsible <pre>; node: a fixed element built once (buttons).
function fillCell(td, c) {
	td.textContent = '';
	if (c.code) {
		if (!c.text) return;
		const lines = c.text.split('\n').length;
		td.append(h('details', { className: 'code' },
			h('summary', { text: `${lines} line${lines === 1 ? '' : 's'}` }),
			h('pre', { text: c.text })));
		return;
	}
	if (c.ts) {
		td.append(h('time', { datetime: c.text, title: `${new Date(c.text).toLocaleString()} (${age(c.text)})`, text: c.text }));
	} else {
		td.append(h('span', { className: 'main ' + (c.cls || ''), text: c.text ?? '' }));
	}
	if (c.sub) td.append(h('small', { className: 'sub', text: c.sub }));
	if (c.title) td.title = c.title; else td.removeAttribute('title');
}

// Keyed update of a table body: rows [{key, cells: [descriptor]}], in order; the first cell
// (the key) is a header cell. Changed cells flash; new rows flash as a whole.
function syncTable(tableId, rows, emptyText, featureRows) {
	const table = $(tableId);
	const tbody = table.tBodies[0];
	const cols = table.tHead.rows[0].cells.length;
	const old = new Map();
	for (const tr of [...tbody.rows]) {
		if (tr.classList.contains('empty-row')) tr.remove();
		else old.set(tr.dataset.key, tr);
	}
	for (const row of rows) {
		let tr = old.get(row.key);
		if (tr) {
			old.delete(row.key);
			for (const c of row.cells) {
				if (c.node) continue;
				const td = tr.querySelector(`:scope > td[data-field="${c.field}"]`);
				const sig = JSON.stringify([c.text, c.sub ?? null]);
				if (td._sig !== sig) {
					td._sig = sig;
					fillCell(td, c);
					flash(td);
				}
			}
		} else {
			tr = h('tr', { dataset: featureRows ? { key: row.key, feature: row.key } : { key: row.key } },
				h('th', { scope: 'row', text: row.label ?? row.key }));
			for (const c of row.cells) {
				const td = h('td', { dataset: { field: c.field } });
				if (c.node) td.append(c.node);
				else {
					td._sig = JSON.stringify([c.text, c.sub ?? null]);
					fillCell(td, c);
				}
				tr.append(td);
			}
			flash(tr);
		}
		tbody.append(tr); // (re)appending keeps the order of rows
	}
	for (const tr of old.values()) tr.remove();
	if (!rows.length) tbody.append(h('tr', { className: 'empty-row' }, h('td', { colspan: cols, text: emptyText })));
}

// ---------------------------------------------------------------- notices and status

function notice(kind, text, { replace = true } = {}) {
	const list = $('notices');
	if (replace) for (const li of [...list.children]) if (li.dataset.kind === kind) li.remove();
	const li = h('li', { className: 'notice notice-' + kind, dataset: { kind } },
		h('span', { className: 'text', text }),
		h('button', { type: 'button', className: 'dismiss', 'aria-label': 'Dismiss', text: '×',
			onclick: () => li.remove() }));
	list.append(li);
	return li;
}

function clearNotice(kind) {
	for (const li of [...$('notices').children]) if (!kind || li.dataset.kind === kind) li.remove();
}

function setConn(st, detail) {
	const el = $('conn-status');
	el.dataset.state = st;
	el.textContent = st;
	$('conn-detail').textContent = detail || '';
}

function logMessage(type, text) {
	const ol = $('event-log');
	const now = new Date();
	const t = now.toTimeString().slice(0, 8) + '.' + String(now.getMilliseconds()).padStart(3, '0');
	ol.prepend(h('li', { dataset: { type } }, h('time', { datetime: now.toISOString(), text: t }), ' ',
		h('b', { text: type }), text ? ' ' + text : ''));
	while (ol.children.length > LOG_MAX) ol.lastChild.remove();
}

// ---------------------------------------------------------------- HTTP

function authHeaders() {
	return state.token ? { Authorization: 'Bearer ' + state.token } : {};
}

async function apiGet(path) {
	const res = await fetch(API + path, { headers: { Accept: 'application/json', ...authHeaders() }, cache: 'no-store' });
	let body = null;
	const text = await res.text();
	if (text) {
		try { body = JSON.parse(text); } catch { body = { message: text }; }
	}
	return { status: res.status, ok: res.ok, body };
}

function httpError(r) {
	const what = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found' }[r.status] || `HTTP ${r.status}`;
	const msg = r.body && typeof r.body === 'object' && r.body.message ? `: ${r.body.message}` : '';
	return what + msg;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------- the list

async function loadThings() {
	const seq = ++state.listSeq;
	const status = $('things-status');
	status.dataset.state = 'loading';
	status.textContent = 'Loading…';
	const q = state.selector ? `?labelSelector=${enc(state.selector)}` : '';
	let r;
	try {
		r = await apiGet(`/${enc(state.app)}/things${q}`);
	} catch (e) {
		r = { status: 0, ok: false, body: { message: e.message } };
	}
	if (seq !== state.listSeq) return; // a newer load superseded this one
	if (!r.ok || !Array.isArray(r.body)) {
		state.things = [];
		renderList();
		status.dataset.state = 'error';
		status.textContent = r.ok ? 'Unexpected answer from the server' : httpError(r);
		return;
	}
	state.things = r.body;
	status.dataset.state = 'ok';
	renderList();
}

function renderList() {
	const ul = $('thing-list');
	ul.textContent = '';
	for (const t of state.things) {
		const md = t.metadata || {};
		const labels = Object.entries(md.labels || {});
		const btn = h('button', {
			type: 'button', className: 'thing-item',
			dataset: { testid: 'thing-item', thing: md.name },
			'aria-current': md.name === state.thingName ? 'true' : null,
			onclick: () => selectThing(md.name),
		},
			h('span', { className: 'name', text: md.name }),
			h('span', { className: 'gen', title: 'generation', text: `#${md.generation ?? '?'}` }),
			labels.length ? h('span', { className: 'labels' },
				...labels.map(([k, v]) => h('span', { className: 'chip', text: v === '' ? k : `${k}=${v}` }))) : null);
		const li = h('li', {}, btn);
		li._search = [md.name, ...labels.map(([k, v]) => `${k}=${v}`)].join('\n').toLowerCase();
		ul.append(li);
	}
	applyFilter();
}

function applyFilter() {
	const f = $('thing-filter').value.trim().toLowerCase();
	let shown = 0;
	for (const li of $('thing-list').children) {
		const hit = !f || li._search.includes(f);
		li.hidden = !hit;
		if (hit) shown++;
	}
	const status = $('things-status');
	if (status.dataset.state !== 'ok') return;
	const n = state.things.length;
	status.textContent = `${n} thing${n === 1 ? '' : 's'}` + (f ? `, ${shown} shown` : '') +
		(state.selector ? ` matching ${state.selector}` : '');
}

function markSelectedInList() {
	for (const b of $('thing-list').querySelectorAll('button.thing-item')) {
		if (b.dataset.thing === state.thingName) b.setAttribute('aria-current', 'true');
		else b.removeAttribute('aria-current');
	}
}

function updateListEntry(thing) {
	for (const b of $('thing-list').querySelectorAll('button.thing-item')) {
		if (b.dataset.thing === thing.metadata.name) {
			const gen = b.querySelector('.gen');
			gen.textContent = `#${thing.metadata.generation}`;
		}
	}
}

// ---------------------------------------------------------------- hash (navigation)

function readHash() {
	const p = new URLSearchParams(location.hash.replace(/^#/, ''));
	return { app: p.get('app') || 'default', thing: p.get('thing') || null, selector: p.get('selector') || '' };
}

function writeHash(next) {
	const p = new URLSearchParams();
	p.set('app', next.app);
	if (next.thing) p.set('thing', next.thing);
	if (next.selector) p.set('selector', next.selector);
	const hash = '#' + p.toString();
	if (location.hash !== hash) location.hash = hash; // hashchange does the rest
	else applyHash();
}

function selectThing(name) {
	writeHash({ app: state.app, thing: name, selector: state.selector });
}

function applyHash() {
	const want = readHash();
	const appChanged = want.app !== state.app || !state.listLoaded;
	const selectorChanged = want.selector !== state.selector;
	state.app = want.app;
	state.selector = want.selector;
	$('app-input').value = state.app;
	$('selector-input').value = state.selector;
	if (appChanged || selectorChanged) {
		state.listLoaded = true;
		loadThings();
	}
	if (appChanged || want.thing !== state.thingName) openThing(want.thing);
}

// ---------------------------------------------------------------- the live thing

function openThing(name) {
	disconnect();
	clearPending();
	state.thingName = name;
	state.thing = null;
	state.deleted = false;
	state.lag = 0;
	state.flash = false;
	markSelectedInList();
	clearNotice();
	$('event-log').textContent = '';
	$('desired-result').textContent = '';
	delete $('desired-result').dataset.state;
	for (const id of ['reported-table', 'desired-table', 'synthetic-table', 'changed-table', 'timers-table',
		'deleting-table', 'labels-table', 'annotations-table', 'metadata-table'])
		$(id).tBodies[0].textContent = '';
	$('raw-json').textContent = '';
	$('thing-generation').textContent = '';
	if (!name) {
		$('thing-view').hidden = true;
		$('thing-empty').hidden = false;
		document.title = 'Doppelganger debugger';
		return;
	}
	$('thing-empty').hidden = true;
	$('thing-view').hidden = false;
	$('thing-name').textContent = name;
	document.title = `${name} · Doppelganger debugger`;
	conn.attempt = 0;
	connect();
}

function wsUrl() {
	const u = new URL(`${API}/${enc(state.app)}/things/${enc(state.thingName)}/notifications`, location.href);
	u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
	if (state.token) u.searchParams.set('token', state.token);
	u.searchParams.set('diff', 'true'); // after initial, RFC 6902 patches instead of whole things
	return u.toString();
}

function clearConnTimers() {
	clearTimeout(conn.retryTimer);
	clearInterval(conn.tickTimer);
	clearTimeout(conn.missingTimer);
	conn.retryTimer = conn.tickTimer = conn.missingTimer = null;
}

function disconnect() {
	clearConnTimers();
	const ws = conn.ws;
	conn.ws = null; // handlers of a socket that is no longer conn.ws do nothing
	if (ws) {
		try { ws.close(1000, 'bye'); } catch { /* already closing */ }
	}
	setConn('idle');
}

function connect() {
	clearConnTimers();
	if (!state.thingName) return;
	let ws;
	try {
		ws = new WebSocket(wsUrl());
	} catch (e) {
		setConn('error', e.message);
		return;
	}
	ws.binaryType = 'arraybuffer'; // binary frames decoded in order with the text ones
	conn.ws = ws;
	state.wsDoc = null;
	conn.openedAt = 0;
	setConn('connecting', conn.attempt ? `attempt ${conn.attempt + 1}` : '');
	ws.addEventListener('open', () => {
		if (ws !== conn.ws) return;
		conn.openedAt = Date.now();
		setConn('connected');
		clearNotice('error');
		logMessage('open', '');
		conn.missingTimer = setTimeout(() => {
			if (ws === conn.ws && !state.thing)
				notice('missing', `“${state.thingName}” does not exist (or is not readable): waiting for it to appear.`);
		}, 3000);
	});
	ws.addEventListener('message', (ev) => {
		if (ws !== conn.ws) return;
		onMessage(typeof ev.data === 'string' ? ev.data : new TextDecoder().decode(ev.data));
	});
	ws.addEventListener('close', (ev) => {
		if (ws !== conn.ws) return;
		conn.ws = null;
		onClosed(ev);
	});
}

async function onClosed(ev) {
	clearConnTimers();
	const opened = conn.openedAt > 0;
	const why = `closed (code ${ev.code}${ev.reason ? ': ' + ev.reason : ''})`;
	logMessage('close', why);
	if (opened && Date.now() - conn.openedAt > 5000) conn.attempt = 0; // it worked for a while
	if (!opened) {
		// The upgrade failed: the browser does not say why, so ask over HTTP.
		const name = state.thingName;
		let r = null;
		try { r = await apiGet(`/${enc(state.app)}/things/${enc(name)}`); } catch { /* server down */ }
		if (conn.ws || conn.retryTimer || state.thingName !== name) return; // the user moved on meanwhile
		if (r && (r.status === 401 || r.status === 403)) {
			setConn('error', httpError(r));
			notice('error', `Cannot watch the thing: ${httpError(r)}. Check the token, then Reconnect.`);
			return;
		}
		if (r && r.status === 404)
			notice('error', `The server refused the connection: application “${state.app}” is not readable (or does not exist). Retrying.`);
	}
	scheduleReconnect(opened ? why : 'could not connect');
}

function scheduleReconnect(why) {
	const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** conn.attempt);
	const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
	conn.attempt++;
	conn.retryAt = Date.now() + delay;
	const tick = () => {
		const s = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
		setConn('reconnecting', `${why}; retry in ${s} s (attempt ${conn.attempt})`);
	};
	tick();
	conn.tickTimer = setInterval(tick, 500);
	conn.retryTimer = setTimeout(connect, delay);
}

function onMessage(text) {
	let msg;
	try {
		msg = JSON.parse(text);
	} catch (e) {
		logMessage('invalid', e.message);
		return;
	}
	const gen = msg.thing && msg.thing.metadata ? msg.thing.metadata.generation : msg.generation;
	logMessage(msg.type || '?', gen !== undefined ? `generation ${gen}` : msg.type === 'lag' ? `lag ${msg.lag}` : '');
	switch (msg.type) {
	case 'initial':
		if (state.thing) state.flash = true; // a reconnect: show what changed while away
		conn.attempt = 0;
		state.wsDoc = msg.thing;
		setThing(msg.thing);
		break;
	case 'change':
		state.wsDoc = msg.thing;
		if (!state.thing || msg.thing.metadata.generation > state.thing.metadata.generation || state.deleted)
			setThing(msg.thing);
		break;
	case 'patch': {
		// the server diffs from the version it last sent us, whatever was dropped between
		let doc = null;
		try {
			if (!state.wsDoc) throw new Error('no version to patch');
			doc = applyPatch(structuredClone(state.wsDoc), msg.patch);
		} catch (e) {
			logMessage('patch-failed', e.message);
			disconnect(); // start again from a fresh initial
			connect();
			break;
		}
		state.wsDoc = doc;
		if (!state.thing || doc.metadata.generation > state.thing.metadata.generation || state.deleted)
			setThing(doc);
		break;
	}
	case 'deleted':
		state.wsDoc = null;
		state.deleted = true;
		$('thing-view').classList.add('deleted');
		notice('deleted', `“${state.thingName}” was deleted. The view shows its last version.`);
		break;
	case 'lag': {
		state.lag += Number(msg.lag) || 0;
		const li = notice('lag', `Missed ${msg.lag} update${msg.lag === 1 ? '' : 's'} (the connection could not keep up; ${state.lag} in all); reloading the thing.`);
		li.dataset.lag = String(state.lag);
		refetch();
		break;
	}
	default:
		break;
	}
}

// After lag: read the thing over HTTP, in case nothing follows on the socket.
async function refetch() {
	const name = state.thingName;
	let r;
	try { r = await apiGet(`/${enc(state.app)}/things/${enc(name)}`); } catch { return; }
	if (name !== state.thingName || !r.ok || !r.body || !r.body.metadata) return;
	if (!state.thing || r.body.metadata.generation > state.thing.metadata.generation) setThing(r.body);
}

// RFC 6902 (add, remove, replace, move, copy, test) on a plain JSON document.
function applyPatch(doc, ops) {
	const parse = (p) => p === '' ? [] : p.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
	const get = (d, path) => path.reduce((o, k) => {
		if (o === null || typeof o !== 'object' || !(k in o)) throw new Error('no path /' + path.join('/'));
		return o[k];
	}, d);
	const put = (d, path, v, replace) => {
		if (!path.length) return v;
		const parent = get(d, path.slice(0, -1));
		const k = path[path.length - 1];
		if (Array.isArray(parent)) {
			const i = k === '-' ? parent.length : Number(k);
			if (replace) parent[i] = v; else parent.splice(i, 0, v);
		} else parent[k] = v;
		return d;
	};
	const del = (d, path) => {
		const parent = get(d, path.slice(0, -1));
		const k = path[path.length - 1];
		if (Array.isArray(parent)) parent.splice(Number(k), 1); else delete parent[k];
		return d;
	};
	for (const op of ops) {
		const path = parse(op.path);
		switch (op.op) {
		case 'add': doc = put(doc, path, op.value, false); break;
		case 'replace': get(doc, path); doc = put(doc, path, op.value, true); break;
		case 'remove': get(doc, path); doc = del(doc, path); break;
		case 'copy': doc = put(doc, path, structuredClone(get(doc, parse(op.from))), false); break;
		case 'move': { const v = get(doc, parse(op.from)); doc = del(doc, parse(op.from)); doc = put(doc, path, v, false); break; }
		case 'test': if (JSON.stringify(get(doc, path)) !== JSON.stringify(op.value)) throw new Error('test failed'); break;
		default: throw new Error('unknown op ' + op.op);
		}
	}
	return doc;
}

function setThing(thing) {
	if (!thing || !thing.metadata) return;
	state.thing = thing;
	if (state.deleted) {
		state.deleted = false;
		$('thing-view').classList.remove('deleted');
		clearNotice('deleted');
	}
	clearNotice('missing');
	render(thing);
	updateListEntry(thing);
	checkPending(thing);
	state.flash = true;
}

// ---------------------------------------------------------------- rendering

function codeOf(def) {
	if (!def || typeof def !== 'object') return { kind: '', code: '' };
	if (typeof def.javaScript === 'string') return { kind: 'javaScript', code: def.javaScript };
	if (typeof def.function === 'string') return { kind: `function ${def.function}`, code: '' };
	if (typeof def.alias === 'string') return { kind: `alias of ${def.alias}`, code: '' };
	return { kind: '?', code: '' };
}

function methodText(m) {
	if (m === undefined) return 'external';
	if (typeof m === 'string') return m;
	const [k] = Object.keys(m);
	if (k === 'command') {
		const c = m.command || {};
		return ['command', c.period && `every ${c.period}`, c.mode, c.encoding && `encoding ${JSON.stringify(c.encoding)}`]
			.filter(Boolean).join(', ');
	}
	if (k === 'code') return `code (${codeOf(m.code).kind})`;
	return JSON.stringify(m);
}

function reconciliationCell(r) {
	r = r || {};
	const sub = [r.when && `when ${r.when}`, r.lastAttempt && `last attempt ${r.lastAttempt}`, r.reason && `reason: ${r.reason}`]
		.filter(Boolean).join('; ');
	return { field: 'state', text: r.state || '?', cls: 'badge state-' + (r.state || 'unknown'), sub };
}

function valueCell(v) {
	return { field: 'value', text: jsonText(v, true), cls: typeClass(v) };
}

function tsCell(field, ts) {
	return ts ? { field, text: ts, ts: true } : { field, text: '' };
}

function logText(lines) {
	return Array.isArray(lines) ? lines.join('\n') : lines === undefined ? '' : JSON.stringify(lines);
}

const byName = (obj) => Object.keys(obj || {}).sort();

function render(t) {
	const md = t.metadata;
	$('thing-generation').textContent = `generation ${md.generation}`;

	syncTable('reported-table', byName(t.reportedState).map((k) => {
		const f = t.reportedState[k] || {};
		return { key: k, cells: [valueCell(f.value), tsCell('lastUpdate', f.lastUpdate)] };
	}), 'No reported state', true);

	syncTable('desired-table', byName(t.desiredState).map((k) => {
		const f = t.desiredState[k] || {};
		return {
			key: k, cells: [
				valueCell(f.value),
				{ field: 'mode', text: f.mode || 'sync' },
				{ field: 'method', text: methodText(f.method) },
				reconciliationCell(f.reconciliation),
				tsCell('validUntil', f.validUntil),
				tsCell('lastUpdate', f.lastUpdate),
				{
					field: 'actions', node: h('span', { className: 'row-actions' },
						h('button', { type: 'button', dataset: { testid: 'desired-edit' }, 'aria-label': `Edit desired value of ${k}`,
							text: 'Edit', onclick: () => editDesired(k) }),
						h('button', { type: 'button', dataset: { testid: 'desired-clear' }, 'aria-label': `Clear desired value of ${k}`,
							text: 'Clear', onclick: () => sendDesired(k, null, '') })),
				},
			],
		};
	}), 'No desired state', true);

	syncTable('synthetic-table', byName(t.syntheticState).map((k) => {
		const f = t.syntheticState[k] || {};
		const c = codeOf(f);
		return {
			key: k, cells: [valueCell(f.value),
				{ field: 'definition', text: c.kind, sub: c.code ? c.code : '', title: f.owner ? `owner ${f.owner}` : '' },
				tsCell('lastUpdate', f.lastUpdate)],
		};
	}), 'No synthetic state', true);

	const rec = t.reconciliation || {};
	syncTable('changed-table', byName(rec.changed).map((k) => {
		const f = rec.changed[k] || {};
		const c = codeOf(f);
		return {
			key: k, cells: [
				{ field: 'kind', text: c.kind, sub: f.owner ? `owner ${f.owner}` : '' },
				{ field: 'lastLog', text: logText(f.lastLog), cls: 'log' },
				{ field: 'code', text: c.code, code: true }],
		};
	}), 'No changed hooks');
	syncTable('timers-table', byName(rec.timers).map((k) => {
		const f = rec.timers[k] || {};
		const c = codeOf(f);
		return {
			key: k, cells: [
				{ field: 'period', text: f.period || '', sub: f.initialDelay ? `initial delay ${f.initialDelay}` : '' },
				{ field: 'stopped', text: f.stopped ? 'stopped' : 'running', cls: f.stopped ? 'badge state-disabled' : 'badge state-succeeded' },
				tsCell('lastStarted', f.lastStarted),
				tsCell('lastRun', f.lastRun),
				{ field: 'lastLog', text: logText(f.lastLog), cls: 'log' },
				{ field: 'code', text: c.code, code: true }],
		};
	}), 'No timers');
	syncTable('deleting-table', byName(rec.deleting).map((k) => {
		const f = rec.deleting[k] || {};
		const c = codeOf(f);
		return {
			key: k, cells: [
				{ field: 'kind', text: c.kind, sub: f.owner ? `owner ${f.owner}` : '' },
				{ field: 'code', text: c.code, code: true }],
		};
	}), 'No deleting hooks');

	const kv = (obj) => byName(obj).map((k) => ({ key: k, cells: [{ field: 'value', text: String(obj[k]) }] }));
	syncTable('labels-table', kv(md.labels), 'No labels');
	syncTable('annotations-table', kv(md.annotations), 'No annotations');

	const meta = [
		['application', md.application], ['name', md.name], ['uid', md.uid], ['generation', md.generation],
		['resourceVersion', md.resourceVersion], ['creationTimestamp', md.creationTimestamp, true],
		['deletionTimestamp', md.deletionTimestamp, true],
	];
	const waker = t.internal && t.internal.waker;
	if (waker && waker.when) meta.push(['waker', waker.when, true, (waker.why || []).join(', ')]);
	const outbox = t.internal && t.internal.outbox;
	if (Array.isArray(outbox) && outbox.length) meta.push(['outbox', `${outbox.length} event${outbox.length === 1 ? '' : 's'} waiting`]);
	if (t.schema) meta.push(['schema', t.schema.json ? `JSON Schema ${t.schema.json.version || ''}`.trim() : JSON.stringify(t.schema)]);
	syncTable('metadata-table', meta.filter((m) => m[1] !== undefined && m[1] !== null).map(([k, v, ts, sub]) => ({
		key: k, cells: [ts ? { ...tsCell('value', v), sub } : { field: 'value', text: String(v) }],
	})), '');

	$('raw-json').textContent = JSON.stringify(t, null, 2);

	const dl = $('feature-options');
	dl.textContent = '';
	for (const k of byName(t.desiredState)) dl.append(h('option', { value: k }));
}

// ---------------------------------------------------------------- desired values

const HUMANTIME = /^\s*(\d+\s*(ns|nsec|us|usec|ms|msec|millis|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|M|month|months|y|year|years)\s*)+$/;

function result(st, text) {
	const out = $('desired-result');
	out.dataset.state = st;
	out.textContent = text;
}

function clearPending() {
	if (state.pending) clearTimeout(state.pending.timer);
	state.pending = null;
}

function editDesired(feature) {
	$('desired-feature').value = feature;
	const f = state.thing && state.thing.desiredState && state.thing.desiredState[feature];
	$('desired-value').value = f ? jsonText(f.value) : '';
	$('desired-value').focus();
}

function sendDesired(feature, value, validFor) {
	if (!feature) {
		result('error', 'Name a feature.');
		$('desired-feature').focus();
		return false;
	}
	if (validFor && !HUMANTIME.test(validFor)) {
		result('error', `“${validFor}” is not a duration (e.g. 30s, 5m, 1h 30m).`);
		$('desired-valid-for').focus();
		return false;
	}
	if (!conn.ws || conn.ws.readyState !== WebSocket.OPEN) {
		result('error', 'Not connected: the value was not sent.');
		return false;
	}
	if (!state.thing || !state.thing.desiredState || !(feature in state.thing.desiredState)) {
		result('error', `“${feature}” is not a desired feature of this thing; define it first (dt_set_desired_state or PUT …/desiredStates/${feature}).`);
		return false;
	}
	const v = { value };
	if (validFor) v.validFor = validFor.trim();
	const msg = { type: 'setDesiredValues', thing: state.thingName, values: { [feature]: v } };
	conn.ws.send(JSON.stringify(msg));
	logMessage('sent', `setDesiredValues ${feature} = ${jsonText(value)}${validFor ? ` for ${validFor}` : ''}`);
	clearPending();
	const since = state.thing.metadata.generation;
	state.pending = {
		feature, value, since,
		timer: setTimeout(() => {
			state.pending = null;
			result('timeout', `No change of ${feature} seen within ${PENDING_TIMEOUT_MS / 1000} s: it may already have had this value, or the server refused it (errors are only logged).`);
		}, PENDING_TIMEOUT_MS),
	};
	result('sent', `Sent ${feature} = ${jsonText(value)}${validFor ? ` valid for ${validFor}` : ''}; waiting for the change…`);
	return true;
}

function checkPending(thing) {
	const p = state.pending;
	if (!p || thing.metadata.generation <= p.since) return;
	const f = thing.desiredState && thing.desiredState[p.feature];
	if (f && JSON.stringify(f.value ?? null) === JSON.stringify(p.value)) {
		clearPending();
		result('applied', `${p.feature} = ${jsonText(p.value)} applied in generation ${thing.metadata.generation}.`);
	}
}

function onDesiredSubmit(ev) {
	ev.preventDefault();
	const feature = $('desired-feature').value.trim();
	const raw = $('desired-value').value.trim();
	if (!raw) {
		result('error', 'Enter a JSON value (or use Clear for null).');
		$('desired-value').focus();
		return;
	}
	let value;
	try {
		value = JSON.parse(raw);
	} catch (e) {
		result('error', `Not valid JSON: ${e.message}. Strings need quotes, e.g. "on".`);
		$('desired-value').setAttribute('aria-invalid', 'true');
		$('desired-value').focus();
		return;
	}
	$('desired-value').removeAttribute('aria-invalid');
	sendDesired(feature, value, $('desired-valid-for').value.trim());
}

// ---------------------------------------------------------------- wiring

function init() {
	$('conn-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const app = $('app-input').value.trim() || 'default';
		const token = $('token-input').value.trim();
		const tokenChanged = token !== state.token;
		state.token = token;
		if (token) sessionStorage.setItem('dg-debugger-token', token); else sessionStorage.removeItem('dg-debugger-token');
		if (app !== state.app) {
			writeHash({ app, thing: null, selector: state.selector });
		} else {
			loadThings();
			if (tokenChanged && state.thingName) { conn.attempt = 0; clearNotice('error'); disconnect(); connect(); }
		}
	});
	$('selector-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const selector = $('selector-input').value.trim();
		if (selector === state.selector) loadThings();
		else writeHash({ app: state.app, thing: state.thingName, selector });
	});
	$('thing-filter').addEventListener('input', applyFilter);
	$('reconnect-btn').addEventListener('click', () => {
		clearNotice('error');
		conn.attempt = 0;
		disconnect();
		connect();
	});
	$('desired-form').addEventListener('submit', onDesiredSubmit);
	// as the reference UI: Clear sends {"value": null}, nothing else
	$('desired-clear').addEventListener('click', () => sendDesired($('desired-feature').value.trim(), null, ''));
	$('desired-value').addEventListener('keydown', (ev) => {
		if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('desired-form').requestSubmit();
	});
	window.addEventListener('hashchange', applyHash);
	window.addEventListener('online', () => {
		if (conn.retryTimer) { clearConnTimers(); connect(); }
	});
	$('token-input').value = state.token;
	applyHash();
}

window.dgDebugger = { state, conn };
init();
