// BullMQ (Node) side of benchmarks/add_cost.py: add `jobs` jobs (200-byte
// payload, no options) to one queue, `inflight` adds pending at a time
// (1 = each awaited before the next), then print {"jobs": n, "seconds": s}.
//
//   node add_cost.mjs '{"url": "redis://127.0.0.1:6379/0", "jobs": 20000, "inflight": 50}'
//
// The caller resets and reads Redis's INFO around the run; a warm-up of 200
// adds (script loading, connection) runs before the line "ready" is printed
// and the script waits for one stdin line before the measured adds.
import { Queue } from 'bullmq';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';

const args = { queue: 'add-cost', jobs: 20000, inflight: 1, ...JSON.parse(process.argv[2] || '{}') };
const url = new URL(args.url);
const connection = { host: url.hostname, port: Number(url.port || 6379),
  db: Number((url.pathname || '/0').slice(1) || 0), maxRetriesPerRequest: null };
const PAYLOAD = { p: 'x'.repeat(192) };

const queue = new Queue(args.queue, { connection });
for (let i = 0; i < 200; i++) await queue.add('noop', PAYLOAD);
process.stdout.write('ready\n');
const rl = createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once('line', resolve));

const t0 = performance.now();
let next = 0;
async function lane() {
  while (next < args.jobs) {
    next++;
    await queue.add('noop', PAYLOAD);
  }
}
await Promise.all(Array.from({ length: args.inflight }, lane));
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ jobs: args.jobs, seconds }) + '\n');
rl.close();
await queue.close();
