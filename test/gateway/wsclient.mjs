// wsclient.mjs: the WebSocket and Server-Sent Events client of the gateway
// tests (test/integration/gateway_*.t), driven over stdin/stdout with one
// JSON object a line.
//
// Commands (stdin), each naming a connection by "id":
//   {"op":"ws","id":"a","url":"ws://…","headers":{…},"autoPong":true,"brief":false}
//     (brief: messages carry only their type, generation, thing name and lag)
//   {"op":"send","id":"a","text":"…"} or {"op":"send","id":"a","json":{…},"binary":true}
//   {"op":"ping","id":"a"}                     a client ping
//   {"op":"close","id":"a","code":1000}        close a WebSocket or an SSE stream
//   {"op":"sse","id":"s","url":"http://…","headers":{…}}
//   {"op":"exit"}
// Events (stdout), each with "id", "ev" and "t" (milliseconds since the epoch):
//   WebSocket: open; message {binary, json} (text instead of json when it is no JSON;
//              brief: binary, type, generation, thing, lag); ping; pong; close {code, reason};
//              unexpected {status, body} (the upgrade was refused); error {message}
//   SSE:       response {status, contentType}; event {event, data, json, lastId};
//              comment {text}; end; error {message}
//
// The ws package comes from ./node_modules, or from the node_modules
// directory named by DG_NODE_MODULES.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const require = createRequire(process.env.DG_NODE_MODULES
	? path.join(path.resolve(process.env.DG_NODE_MODULES), '..', 'wsclient.cjs')
	: import.meta.url);
const WebSocket = require('ws');

const conns = new Map();

// Asynchronous output: a test that does not read for a while must not make
// this client stop reading its sockets (which the gateway would see as a
// slow client).
const out = fs.createWriteStream(null, { fd: 1 });

function emit(id, ev, extra = {})
{
	out.write(JSON.stringify({ id, ev, t: Date.now(), ...extra }) + '\n');
}

function parse(text)
{
	try { return JSON.parse(text); } catch { return undefined; }
}

function openWs(cmd)
{
	const ws = new WebSocket(cmd.url, {
		headers: cmd.headers || {},
		autoPong: cmd.autoPong !== false,
		perMessageDeflate: false,
		handshakeTimeout: 10000,
	});
	conns.set(cmd.id, { kind: 'ws', ws });
	ws.on('open', () => emit(cmd.id, 'open'));
	ws.on('message', (data, isBinary) => {
		const text = Buffer.from(data).toString('utf8');
		const json = parse(text);
		if (json === undefined)
			emit(cmd.id, 'message', { binary: isBinary, text });
		else if (cmd.brief)
			emit(cmd.id, 'message', { binary: isBinary, type: json.type,
				generation: json.generation ?? json.thing?.metadata?.generation ?? null,
				thing: typeof json.thing === 'string' ? json.thing : json.thing?.metadata?.name ?? null,
				lag: json.lag ?? null });
		else
			emit(cmd.id, 'message', { binary: isBinary, json });
	});
	ws.on('ping', () => emit(cmd.id, 'ping'));
	ws.on('pong', () => emit(cmd.id, 'pong'));
	ws.on('close', (code, reason) => emit(cmd.id, 'close', { code, reason: reason.toString('utf8') }));
	ws.on('error', (err) => emit(cmd.id, 'error', { message: String(err && err.message) }));
	ws.on('unexpected-response', (req, res) => {
		let body = '';
		res.setEncoding('utf8');
		res.on('data', (chunk) => { body += chunk; });
		res.on('end', () => {
			emit(cmd.id, 'unexpected', { status: res.statusCode, body });
			req.destroy();
		});
		res.on('error', () => emit(cmd.id, 'unexpected', { status: res.statusCode, body }));
	});
}

function openSse(cmd)
{
	const req = http.get(cmd.url, { headers: { Accept: 'text/event-stream', ...(cmd.headers || {}) } }, (res) => {
		emit(cmd.id, 'response', { status: res.statusCode, contentType: res.headers['content-type'] || null });
		res.setEncoding('utf8');
		let buf = '';
		let event = '', data = [], lastId = null;
		res.on('data', (chunk) => {
			buf += chunk;
			let nl;
			while ((nl = buf.search(/\r\n|\r|\n/)) >= 0)
			{
				const line = buf.slice(0, nl);
				buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
				if (line === '')
				{
					if (data.length)
					{
						const text = data.join('\n');
						emit(cmd.id, 'event', { event: event || 'message', data: text, json: parse(text), lastId });
					}
					event = '';
					data = [];
					continue;
				}
				if (line.startsWith(':'))
				{
					emit(cmd.id, 'comment', { text: line.slice(1) });
					continue;
				}
				const colon = line.indexOf(':');
				const field = colon < 0 ? line : line.slice(0, colon);
				let value = colon < 0 ? '' : line.slice(colon + 1);
				if (value.startsWith(' '))
					value = value.slice(1);
				if (field === 'event') event = value;
				else if (field === 'data') data.push(value);
				else if (field === 'id') lastId = value;
			}
		});
		res.on('end', () => emit(cmd.id, 'end'));
		res.on('error', (err) => emit(cmd.id, 'error', { message: String(err && err.message) }));
	});
	req.on('error', (err) => emit(cmd.id, 'error', { message: String(err && err.message) }));
	conns.set(cmd.id, { kind: 'sse', req });
}

function handle(cmd)
{
	const conn = conns.get(cmd.id);
	switch (cmd.op)
	{
		case 'ws': openWs(cmd); break;
		case 'sse': openSse(cmd); break;
		case 'send':
			if (cmd.json !== undefined)
				conn.ws.send(cmd.binary ? Buffer.from(JSON.stringify(cmd.json)) : JSON.stringify(cmd.json), { binary: !!cmd.binary });
			else
				conn.ws.send(cmd.binary ? Buffer.from(cmd.text) : cmd.text, { binary: !!cmd.binary });
			break;
		case 'ping': conn.ws.ping(); break;
		case 'close':
			if (conn.kind === 'ws') conn.ws.close(cmd.code || 1000, cmd.reason || '');
			else conn.req.destroy();
			break;
		case 'exit': out.end(() => process.exit(0)); break;
		default: emit(cmd.id, 'error', { message: `unknown op ${cmd.op}` });
	}
}

createInterface({ input: process.stdin }).on('line', (line) => {
	if (!line.trim())
		return;
	let cmd;
	try { cmd = JSON.parse(line); } catch (e) { emit(null, 'error', { message: `bad command: ${e.message}` }); return; }
	try { handle(cmd); } catch (e) { emit(cmd.id, 'error', { message: String(e && e.message) }); }
}).on('close', () => out.end(() => process.exit(0)));
