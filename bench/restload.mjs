// bench/restload.mjs: PUT …/reportedStates through the gateway, as fast as
// CLIENTS keep-alive connections go, for SECONDS; prints the 204s per second.
//
//   node bench/restload.mjs URL APPLICATION THINGS CLIENTS SECONDS
import http from 'node:http';

const [url, app, things, clients, seconds] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(clients) });
const end = Date.now() + Number(seconds) * 1000;
let ok = 0, failed = 0;

function put(path, body) {
	return new Promise((resolve) => {
		const req = http.request(`${url}${path}`, {
			method: 'PUT', agent,
			headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
		}, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
		req.on('error', () => resolve(0));
		req.end(body);
	});
}

async function client() {
	while (Date.now() < end) {
		const id = 1 + Math.floor(Math.random() * Number(things));
		const v = Math.floor(Math.random() * 1e9);
		const status = await put(`/api/v1alpha1/things/${app}/things/d${id}/reportedStates`,
			JSON.stringify({ temp: v, hum: v % 100 }));
		if (status === 204) ok++; else failed++;
	}
}

const t0 = Date.now();
await Promise.all(Array.from({ length: Number(clients) }, client));
const rate = ok * 1000 / (Date.now() - t0);
console.log(JSON.stringify({ rate: Math.round(rate), ok, failed }));
agent.destroy();
