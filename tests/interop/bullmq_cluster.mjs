#!/usr/bin/env node
// BullMQ (Node) on a Redis Cluster, for pyqueue's cluster interop test.
//
// Usage: node tests/interop/bullmq_cluster.mjs <command> '<json-args>'
// JSON args: port (any node of the cluster, on 127.0.0.1), queue, prefix.
// Commands (one JSON line on stdout; exit 1 with {"error"} on failure):
//   add   {jobs: n}                 -> {"ids": [...]}   adds n jobs {i}
//   work  {count, timeoutMs}        -> {"processed": [{id, data}]}  returns {doubled: 2*i}
import { Queue, Worker } from 'bullmq';
import { Cluster } from 'ioredis';

const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
console.log = log;
const [command, raw] = process.argv.slice(2);
const args = JSON.parse(raw);
const cluster = () => new Cluster([{ host: '127.0.0.1', port: args.port }],
  { redisOptions: { maxRetriesPerRequest: null } });

async function main() {
  if (command === 'add') {
    const queue = new Queue(args.queue, { connection: cluster(), prefix: args.prefix });
    const jobs = await queue.addBulk(
      Array.from({ length: args.jobs }, (_, i) => ({ name: 'node', data: { i } })));
    await queue.close();
    return { ids: jobs.map((j) => j.id) };
  }
  if (command === 'work') {
    const processed = [];
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const worker = new Worker(args.queue, async (job) => {
      processed.push({ id: job.id, data: job.data });
      if (processed.length >= args.count) done();
      return { doubled: 2 * job.data.i };
    }, { connection: cluster(), prefix: args.prefix, concurrency: 5 });
    const timer = setTimeout(done, args.timeoutMs || 20000);
    await finished;
    clearTimeout(timer);
    await worker.close();
    return { processed };
  }
  throw new Error(`unknown command ${command}`);
}

main().then((out) => { process.stdout.write(JSON.stringify(out) + '\n'); process.exit(0); },
  (err) => { process.stdout.write(JSON.stringify({ error: String(err) }) + '\n');
    process.exit(1); });
