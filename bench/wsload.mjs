// bench/wsload.mjs: N WebSocket subscribers, one per thing, on the
// gateway's single-thing endpoint; measures how long each change took from
// the thing's processing (the newest lastUpdate of its reported features,
// set in the transaction that committed it) to this client.
//
//   node bench/wsload.mjs URL APPLICATION PREFIX N SECONDS
//
// Prints "ready" once every socket has its initial state, then, SECONDS
// later, one JSON line: subscribers, changes received, latency percentiles
// in ms, lag reported by the gateway, errors.
import WebSocket from 'ws';

const [url, app, prefix, count, seconds] = process.argv.slice(2);
const n = Number(count);
const base = url.replace(/^http/, 'ws') + '/api/v1alpha1/things/' + encodeURIComponent(app) + '/things/';
const latencies = [];
let initial = 0, changes = 0, lag = 0, errors = 0, closed = 0;
let measuring = false;
const sockets = [];

function newest(thing) {
	let t = 0;
	for (const f of Object.values(thing.reportedState || {}))
		if (f.lastUpdate) t = Math.max(t, Date.parse(f.lastUpdate));
	return t;
}

for (let i = 0; i < n; i++) {
	const ws = new WebSocket(base + encodeURIComponent(prefix + i) + '/notifications');
	ws.on('message', (data) => {
		const now = Date.now();
		const m = JSON.parse(data);
		if (m.type === 'initial') {
			if (++initial === n) {
				measuring = true;
				console.log('ready');
				setTimeout(finish, Number(seconds) * 1000);
			}
		} else if (m.type === 'change') {
			if (!measuring) return;
			changes++;
			const t = newest(m.thing);
			if (t) latencies.push(now - t);
		} else if (m.type === 'lag') {
			lag += m.lag;
		}
	});
	ws.on('error', () => errors++);
	ws.on('close', () => closed++);
	sockets.push(ws);
}

function pct(sorted, p) {
	if (sorted.length === 0) return null;
	return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function finish() {
	measuring = false;
	const s = latencies.sort((a, b) => a - b);
	console.log(JSON.stringify({
		subscribers: n, changes, p50: pct(s, 0.5), p90: pct(s, 0.9), p99: pct(s, 0.99),
		max: s.length ? s[s.length - 1] : null, lag, errors, closed_early: closed,
	}));
	for (const ws of sockets) ws.terminate();
	process.exit(0);
}
