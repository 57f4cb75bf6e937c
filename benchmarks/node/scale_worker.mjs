// One BullMQ (Node) worker process for benchmarks/scaling.py and
// benchmarks/cluster.py: consumes a queue with a no-op processor until it gets
// SIGTERM.
//
//   node scale_worker.mjs '{"url": "redis://127.0.0.1:6379/0", "queue": "q",
//                           "concurrency": 100, "prefix": "bull"}'
//   node scale_worker.mjs '{"clusterPort": 7000, "queue": "q", "prefix": "{bull}", ...}'
//
// With clusterPort the connection is an ioredis Cluster seeded from
// 127.0.0.1:clusterPort (the prefix must then hold a hash tag).
import { Worker } from 'bullmq';
import { Cluster } from 'ioredis';

const args = { concurrency: 100, prefix: 'bull', ...JSON.parse(process.argv[2] || '{}') };
let connection;
if (args.clusterPort) {
  connection = new Cluster([{ host: '127.0.0.1', port: args.clusterPort }],
    { redisOptions: { maxRetriesPerRequest: null } });
} else {
  const url = new URL(args.url);
  connection = {
    host: url.hostname, port: Number(url.port || 6379),
    db: Number((url.pathname || '/0').slice(1) || 0), maxRetriesPerRequest: null,
  };
}
const worker = new Worker(args.queue, async () => {}, {
  connection, prefix: args.prefix, concurrency: args.concurrency,
});
worker.on('error', (err) => process.stderr.write(`${err}\n`));
const stop = async () => { await worker.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
