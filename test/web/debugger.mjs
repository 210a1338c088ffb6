// The debugger page in headless Chromium, driven by test/integration/debugger.t.
//
// Talks JSON lines with the .t:
//   stdout: {"ok": bool, "name": "...", "diag"?: "..."}   an assertion
//           {"need": "STEP", ...}                          the .t does STEP (SQL, gateway), then
//   stdin:  {"ack": "STEP", ...}                           answers (with data for some steps)
//           {"screenshot": "PATH"}                         a screenshot was saved
//           {"end": true}                                  the script is done
// Environment: DG_URL (the gateway's base URL), DG_SCREENSHOT (where to save it),
// DG_NODE_MODULES (the folder holding node_modules; default this folder),
// DG_CHROMIUM (default /usr/bin/chromium).
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.DG_NODE_MODULES || here, 'package.json'));
const { chromium } = require('playwright-core');

const BASE = process.env.DG_URL.replace(/\/$/, '');
const APP = 'default';
const LAMP = 'kitchen/lamp';
const XSS = '<img src=x onerror="window.__xss=1">';

// ---- the line protocol

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let failures = 0;
function ok(cond, name, diag) {
	if (!cond) failures++;
	out(cond ? { ok: true, name } : { ok: false, name, diag: diag === undefined ? '' : String(diag) });
	return !!cond;
}

const lines = [];
const waiters = [];
readline.createInterface({ input: process.stdin }).on('line', (l) => {
	if (waiters.length) waiters.shift()(l); else lines.push(l);
});
function nextLine(ms) {
	if (lines.length) return Promise.resolve(lines.shift());
	return new Promise((resolve, reject) => {
		const t = setTimeout(() => reject(new Error('no answer from the .t')), ms);
		waiters.push((l) => { clearTimeout(t); resolve(l); });
	});
}
async function need(step, extra = {}) {
	out({ need: step, ...extra });
	const answer = JSON.parse(await nextLine(60000));
	if (answer.ack !== step) throw new Error(`expected ack ${step}, got ${JSON.stringify(answer)}`);
	return answer;
}

// ---- page helpers

const cell = (table, key, field) => `#${table} tr[data-key="${key}"] td[data-field="${field}"]`;

async function waitFor(page, name, fn, arg, timeout = 15000) {
	try {
		await page.waitForFunction(fn, arg, { timeout });
		return ok(true, name);
	} catch (e) {
		return ok(false, name, e.message.split('\n')[0]);
	}
}

async function text(page, sel) {
	const el = await page.$(sel);
	return el ? (await el.textContent()).trim() : null;
}

async function cellText(page, table, key, field) {
	return text(page, cell(table, key, field));
}

// the cell shows `want`, optionally while it flashes
function cellShows(page, name, table, key, field, want, { flashing = false, timeout } = {}) {
	return waitFor(page, name, ([sel, want, flashing]) => {
		const td = document.querySelector(sel);
		return td && td.textContent.trim() === want && (!flashing || td.classList.contains('flash'));
	}, [cell(table, key, field), want, flashing], timeout);
}

function connState(page, name, want, timeout) {
	return waitFor(page, name, (want) => document.getElementById('conn-status')?.dataset.state === want, want, timeout);
}

async function visibleThings(page) {
	return page.$$eval('#thing-list li:not([hidden]) [data-testid="thing-item"]', (bs) => bs.map((b) => b.dataset.thing));
}

// ---- the test

const browser = await chromium.launch({
	executablePath: process.env.DG_CHROMIUM || '/usr/bin/chromium',
	// CI runs as root, where Chromium's sandbox cannot start; harmless otherwise.
	args: ['--no-sandbox', '--disable-dev-shm-usage'],
	timeout: 60000,
});
const watchdog = setTimeout(() => { ok(false, 'the browser test finished in time'); process.exit(1); }, 240000);

try {
	const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, reducedMotion: 'no-preference' });
	const page = await context.newPage();
	page.setDefaultTimeout(15000);
	const pageErrors = [];
	const consoleErrors = [];
	const foreign = [];
	const sockets = [];
	page.on('pageerror', (e) => pageErrors.push(e.message));
	page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
	page.on('request', (r) => {
		const u = r.url();
		if (!u.startsWith(BASE + '/') && !u.startsWith('data:')) foreign.push(u);
	});
	page.on('websocket', (ws) => sockets.push(ws.url()));

	// -- the list
	const res = await page.goto(`${BASE}/debugger/`);
	ok(res && res.status() === 200, 'GET /debugger/ serves the page', res && res.status());
	ok((await page.title()).includes('Doppelganger'), 'the page has its title', await page.title());
	ok(await page.inputValue('#app-input') === APP, 'the application defaults to "default"');
	await waitFor(page, 'the list shows the things of the application',
		(n) => document.querySelectorAll('#thing-list [data-testid="thing-item"]').length === n, 3);
	const names = await visibleThings(page);
	ok(JSON.stringify(names) === JSON.stringify(['boiler', 'hall/sensor', LAMP]),
		'the list holds boiler, hall/sensor and kitchen/lamp, in name order', JSON.stringify(names));
	ok(/3 things/.test(await text(page, '#things-status')), 'the list counts 3 things', await text(page, '#things-status'));

	await page.fill('#thing-filter', 'SENS');
	ok(JSON.stringify(await visibleThings(page)) === '["hall/sensor"]', 'the filter box narrows the list (case-insensitive)',
		JSON.stringify(await visibleThings(page)));
	await page.fill('#thing-filter', '');
	ok((await visibleThings(page)).length === 3, 'clearing the filter shows every thing again');

	await page.fill('#selector-input', 'room=kitchen');
	await page.press('#selector-input', 'Enter');
	await waitFor(page, 'the label selector room=kitchen lists only kitchen/lamp',
		() => [...document.querySelectorAll('#thing-list [data-testid="thing-item"]')].map((b) => b.dataset.thing).join() === 'kitchen/lamp');
	ok(new URLSearchParams((await page.evaluate(() => location.hash)).slice(1)).get('selector') === 'room=kitchen',
		'the selector is remembered in the URL hash');
	await page.fill('#selector-input', '');
	await page.press('#selector-input', 'Enter');
	await waitFor(page, 'an empty selector lists every thing again',
		() => document.querySelectorAll('#thing-list [data-testid="thing-item"]').length === 3);

	// -- open the thing
	await page.click(`[data-testid="thing-item"][data-thing="${LAMP}"]`);
	await waitFor(page, 'choosing a thing puts it in the URL hash',
		(t) => new URLSearchParams(location.hash.slice(1)).get('thing') === t, LAMP);
	await connState(page, 'the live view connects', 'connected');
	ok(await text(page, '#thing-name') === LAMP, 'the header names the thing', await text(page, '#thing-name'));
	ok(sockets.some((u) => u.startsWith(BASE.replace(/^http/, 'ws') + `/api/v1alpha1/things/${APP}/things/kitchen%2Flamp/notifications`)),
		'it uses the single-thing WebSocket endpoint (name URL-encoded)', JSON.stringify(sockets));
	await cellShows(page, 'the initial reported brightness is shown', 'reported-table', 'brightness', 'value', '80');
	ok(/^\d{4}-\d\d-\d\dT/.test(await cellText(page, 'reported-table', 'brightness', 'lastUpdate') || ''),
		'the reported feature shows its lastUpdate', await cellText(page, 'reported-table', 'brightness', 'lastUpdate'));
	ok(await cellText(page, 'reported-table', 'on', 'value') === 'true', 'reported on = true');
	ok(await cellText(page, 'desired-table', 'brightness', 'value') === '100', 'desired brightness value 100',
		await cellText(page, 'desired-table', 'brightness', 'value'));
	ok(await cellText(page, 'desired-table', 'brightness', 'state') === 'reconciling', 'desired brightness is reconciling',
		await cellText(page, 'desired-table', 'brightness', 'state'));
	ok(await cellText(page, 'desired-table', 'brightness', 'method') === 'external', 'desired method external');
	ok(await cellText(page, 'desired-table', 'on', 'mode') === 'once', 'desired on: mode once');
	ok(/^\d{4}-/.test(await cellText(page, 'desired-table', 'brightness', 'validUntil') || ''), 'desired brightness has validUntil');
	ok(await cellText(page, 'synthetic-table', 'level', 'value') === '80', 'synthetic level (alias) = 80',
		await cellText(page, 'synthetic-table', 'level', 'value'));
	ok(/alias of brightness/.test(await cellText(page, 'synthetic-table', 'level', 'definition') || ''), 'synthetic definition shown');
	ok(await page.$('#changed-table tr[data-key="audit"]') !== null, 'the changed hook is listed');
	ok(/seen/.test(await cellText(page, 'changed-table', 'audit', 'lastLog') || ''), 'the changed hook shows its lastLog',
		await cellText(page, 'changed-table', 'audit', 'lastLog'));
	ok(await cellText(page, 'timers-table', 'tick', 'period') === '1h', 'the timer shows its period');
	ok(/^\d{4}-/.test(await cellText(page, 'timers-table', 'tick', 'lastRun') || ''), 'the timer shows lastRun');
	ok(await cellText(page, 'timers-table', 'tick', 'lastLog') === 'tick', 'the timer shows lastLog',
		await cellText(page, 'timers-table', 'tick', 'lastLog'));
	ok(await page.$('#deleting-table tr[data-key="bye"]') !== null, 'the deleting hook is listed');
	ok(await cellText(page, 'labels-table', 'room', 'value') === 'kitchen', 'label room=kitchen');
	ok(await cellText(page, 'annotations-table', 'drogue.io/device', 'value') === 'lamp-1', 'annotation drogue.io/device');
	ok(await cellText(page, 'metadata-table', 'name', 'value') === LAMP, 'metadata name');
	ok(/^[0-9a-f-]{36}$/.test(await cellText(page, 'metadata-table', 'resourceVersion', 'value') || ''), 'metadata resourceVersion');
	ok(/^\d{4}-/.test(await cellText(page, 'metadata-table', 'creationTimestamp', 'value') || ''), 'metadata creationTimestamp');
	const gen0 = Number(await cellText(page, 'metadata-table', 'generation', 'value'));
	ok(gen0 > 0, 'metadata generation', gen0);

	// -- escaping: markup in data stays text
	ok(await cellText(page, 'labels-table', 'note', 'value') === XSS, 'a label holding markup is shown as text',
		await cellText(page, 'labels-table', 'note', 'value'));
	ok(await page.$$eval('#thing-view img, #thing-list img', (x) => x.length) === 0, 'no element was made from the data');
	ok(await page.evaluate(() => window.__xss) === undefined, 'no script from the data ran');

	// -- a report through SQL shows up live, without a reload
	await page.evaluate(() => { window.__sameDocument = true; });
	await need('report', { state: { brightness: 42 } });
	await cellShows(page, 'a state reported through SQL appears live and flashes', 'reported-table', 'brightness', 'value', '42',
		{ flashing: true });
	await cellShows(page, 'the synthetic alias follows', 'synthetic-table', 'level', 'value', '42');
	ok(Number(await cellText(page, 'metadata-table', 'generation', 'value')) > gen0, 'the generation went up');
	ok(await page.evaluate(() => window.__sameDocument) === true, 'the page was not reloaded');
	ok(/\bpatch generation \d+/.test(await text(page, '#event-log') || ''), 'the change came as an RFC 6902 patch (diff mode)');
	{
		const shown = await cellText(page, 'metadata-table', 'generation', 'value');
		await page.waitForFunction(([sel, want]) => (document.querySelector(sel)?.textContent || '').trim() === want,
			[`[data-testid="thing-item"][data-thing="${LAMP}"] .gen`, '#' + shown], { timeout: 5000 }).catch(() => {});
		const entry = (await text(page, `[data-testid="thing-item"][data-thing="${LAMP}"] .gen`) || '').trim();
		ok(entry === '#' + shown, `the list entry shows the new generation (${entry}, expected #${shown})`);
	}

	// -- set a desired value through the page
	await page.fill('#desired-feature', 'brightness');
	await page.fill('#desired-value', '75');
	await page.fill('#desired-valid-for', '1m');
	await page.click('#desired-set');
	await waitFor(page, 'the page reports the desired value applied',
		() => document.getElementById('desired-result').dataset.state === 'applied');
	await cellShows(page, 'the desired value 75 is shown', 'desired-table', 'brightness', 'value', '75');
	const checked = await need('check-desired', { feature: 'brightness', value: 75, validFor: 60 });
	ok(checked.ok, 'the desired value set in the page arrived in the database', checked.diag);

	// -- the artifact
	const shot = process.env.DG_SCREENSHOT;
	if (shot) {
		await page.evaluate(() => { document.getElementById('log-details').open = true; window.scrollTo(0, 0); });
		await page.screenshot({ path: shot, fullPage: true });
		out({ screenshot: shot });
	}

	await page.fill('#desired-value', 'not json');
	await page.click('#desired-set');
	ok(await page.getAttribute('#desired-result', 'data-state') === 'error', 'invalid JSON is refused in the page');

	await page.fill('#desired-feature', 'nosuchfeature');
	await page.fill('#desired-value', '1');
	await page.click('#desired-set');
	ok(await page.getAttribute('#desired-result', 'data-state') === 'error', 'an unknown desired feature is refused in the page');

	await page.click(`#desired-table tr[data-key="on"] [data-testid="desired-clear"]`);
	await cellShows(page, 'Clear sets the desired value to null', 'desired-table', 'on', 'value', 'null');
	const cleared = await need('check-desired', { feature: 'on', value: null });
	ok(cleared.ok, 'the cleared value arrived in the database', cleared.diag);

	// -- raw JSON
	ok(!(await page.isVisible('#raw-json')), 'the raw JSON starts collapsed');
	await page.click('#raw-details > summary');
	ok(await page.isVisible('#raw-json'), 'the raw JSON expands');
	const raw = JSON.parse(await page.textContent('#raw-json'));
	ok(raw.metadata.name === LAMP && raw.reportedState.brightness.value === 42, 'the raw JSON is the current thing');

	ok(pageErrors.length === 0, 'no uncaught error in the page', pageErrors.join('; '));
	ok(consoleErrors.length === 0, 'no error in the console', consoleErrors.join('; '));
	ok(foreign.length === 0, 'nothing is loaded from elsewhere', foreign.join(' '));

	// -- the gateway goes away and comes back: reconnect with backoff
	await need('stop-gateway');
	await connState(page, 'the page shows it reconnects when the gateway goes away', 'reconnecting');
	ok(/retry in \d+ s/.test(await text(page, '#conn-detail') || ''), 'with a backoff countdown', await text(page, '#conn-detail'));
	await need('start-gateway');
	await connState(page, 'it connects again when the gateway is back', 'connected', 45000);
	await need('report', { state: { brightness: 43 } });
	await cellShows(page, 'and shows changes live again', 'reported-table', 'brightness', 'value', '43');

	// -- deletion
	await need('delete');
	await waitFor(page, 'a deleted thing is announced',
		() => !!document.querySelector('#notices li[data-kind="deleted"]'));

	// -- a gateway that wants tokens
	const auth = await need('auth-gateway');
	const page2 = await context.newPage();
	page2.on('pageerror', (e) => pageErrors.push(e.message));
	const sockets2 = [];
	page2.on('websocket', (ws) => sockets2.push(ws.url()));
	await page2.goto(`${auth.url}/debugger/#app=${APP}&thing=hall%2Fsensor`);
	await waitFor(page2, 'without a token the list says Unauthorized',
		() => { const s = document.getElementById('things-status'); return s.dataset.state === 'error' && /Unauthorized/.test(s.textContent); });
	await connState(page2, 'and the live view stops with an error', 'error');
	await page2.fill('#token-input', auth.token);
	await page2.click('#app-open');
	await waitFor(page2, 'with the token the list loads (Authorization: Bearer)',
		() => document.querySelectorAll('#thing-list [data-testid="thing-item"]').length === 2);
	await connState(page2, 'and the live view connects (?token=)', 'connected');
	ok(sockets2.some((u) => new URL(u).searchParams.get('token') === auth.token), 'the token travels as ?token= on the WebSocket');
	await cellShows(page2, 'the thing is shown', 'reported-table', 'temperature', 'value', '21.5');
	ok(!(await page2.evaluate(() => location.href)).includes(auth.token), 'the token is not put in the URL');
	ok(pageErrors.length === 0, 'still no uncaught error in the pages', pageErrors.join('; '));
} catch (e) {
	ok(false, 'the browser test ran to its end', e.stack);
} finally {
	clearTimeout(watchdog);
	await browser.close().catch(() => {});
	out({ end: true, failures });
}
