// BullMQ (Node) side of pyqueue's benchmark suite.
//
//   node bench.mjs <workload> '<json args>'
//
// The same workloads and line protocol as the Python adapters (see
// benchmarks/common.py): JSON lines on stdout, {"checkpoint": "start"|"end"}
// around the measured phase (waiting for one stdin line each when
// "handshake" is true) and one {"result": {...}} at the end.
import { Queue, Worker } from 'bullmq';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';

const PAYLOAD = { p: 'x'.repeat(192) }; // 200 bytes of JSON
const JOB_NAME = 'noop';
const LATENCY_PAUSE = [5, 15]; // ms

const [workload, raw] = process.argv.slice(2);
const args = {
  queue: 'bench', jobs: 1000, concurrency: 1, batch: 1000, samples: 200,
  deadline: 30, handshake: false, ...JSON.parse(raw || '{}'),
};
const url = new URL(args.url);
const connection = {
  host: url.hostname,
  port: Number(url.port || 6379),
  db: Number((url.pathname || '/0').slice(1) || 0),
  maxRetriesPerRequest: null,
};

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const now = () => performance.now() / 1000; // seconds
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const stdinLines = [];
const stdinWaiters = [];
let stdinClosed = false;
if (args.handshake) {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const w = stdinWaiters.shift();
    if (w) w(line); else stdinLines.push(line);
  });
  rl.on('close', () => {
    stdinClosed = true;
    for (const w of stdinWaiters.splice(0)) w(null);
  });
}
async function checkpoint(name) {
  out({ checkpoint: name });
  if (!args.handshake) return;
  const line = stdinLines.length ? stdinLines.shift()
    : stdinClosed ? null : await new Promise((r) => stdinWaiters.push(r));
  if (line === null) {
    console.error('benchmark orchestrator went away');
    process.exit(2);
  }
}

function batches(total, size) {
  const sizes = [];
  for (let i = 0; i < total; i += size) sizes.push(Math.min(size, total - i));
  return sizes;
}
const bulk = (n) => Array.from({ length: n }, () => ({ name: JOB_NAME, data: PAYLOAD }));

async function enqueueSingle() {
  const queue = new Queue(args.queue, { connection });
  await queue.getJobCounts('waiting');
  await checkpoint('start');
  const t0 = now();
  let done = 0;
  for (let i = 0; i < args.jobs; i++) {
    await queue.add(JOB_NAME, PAYLOAD);
    done++;
    if (done % 64 === 0 && now() - t0 > args.deadline) break;
  }
  const seconds = now() - t0;
  await checkpoint('end');
  await queue.close();
  return { jobs: done, seconds };
}

async function enqueueBulk() {
  const queue = new Queue(args.queue, { connection });
  await queue.getJobCounts('waiting');
  await checkpoint('start');
  const t0 = now();
  let done = 0;
  for (const size of batches(args.jobs, args.batch)) {
    await queue.addBulk(bulk(size));
    done += size;
    if (now() - t0 > args.deadline) break;
  }
  const seconds = now() - t0;
  await checkpoint('end');
  await queue.close();
  return { jobs: done, seconds };
}

async function processJobs() {
  const queue = new Queue(args.queue, { connection });
  for (const size of batches(args.jobs, args.batch)) await queue.addBulk(bulk(size));
  await queue.close();
  let count = 0;
  let firstStart = null;
  let end = null;
  let finish;
  const finished = new Promise((r) => { finish = r; });
  const worker = new Worker(args.queue, async () => {
    if (firstStart === null) firstStart = now();
  }, { connection, concurrency: args.concurrency, autorun: false });
  worker.on('completed', () => {
    count++;
    if (count === args.jobs) { end = now(); finish(); }
  });
  await checkpoint('start');
  const launched = now();
  worker.run();
  const timer = setTimeout(finish, args.deadline * 1000);
  await finished;
  clearTimeout(timer);
  const stop = end ?? now();
  const first = firstStart ?? launched;
  const result = {
    jobs: count, seconds: Math.max(stop - first, 1e-9),
    startup_seconds: first - launched, timed_out: end === null,
  };
  await checkpoint('end');
  await worker.close(true);
  return result;
}

async function latency() {
  const queue = new Queue(args.queue, { connection });
  let startedAt = null;
  let wake = null;
  const worker = new Worker(args.queue, async () => {
    if (startedAt === null) startedAt = now();
    if (wake) wake();
  }, { connection, concurrency: 1 });
  await worker.waitUntilReady();
  await queue.getJobCounts('waiting');
  await sleep(200);
  await checkpoint('start');
  const latencies = [];
  const deadline = now() + args.deadline;
  let missed = 0;
  while (latencies.length < args.samples && now() < deadline) {
    await sleep(LATENCY_PAUSE[0] + Math.random() * (LATENCY_PAUSE[1] - LATENCY_PAUSE[0]));
    startedAt = null;
    const started = new Promise((r) => { wake = r; });
    const t0 = now();
    await queue.add(JOB_NAME, PAYLOAD);
    if (startedAt === null) {
      const timeout = sleep(Math.max(100, (deadline - now()) * 1000)).then(() => 'timeout');
      if ((await Promise.race([started, timeout])) === 'timeout' && startedAt === null) {
        missed++;
        break;
      }
    }
    wake = null;
    latencies.push((startedAt - t0) * 1000);
  }
  await checkpoint('end');
  await worker.close(true);
  await queue.close();
  return { latencies_ms: latencies, missed };
}

const workloads = {
  enqueue_single: enqueueSingle,
  enqueue_bulk: enqueueBulk,
  process: processJobs,
  latency,
};

const fn = workloads[workload];
if (!fn) {
  console.error(`usage: node bench.mjs {${Object.keys(workloads).join(',')}} '<json args>'`);
  process.exit(2);
}
try {
  out({ result: await fn() });
  process.exit(0);
} catch (err) {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
}
