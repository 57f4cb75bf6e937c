#!/usr/bin/env node
// Bull Board (@bull-board/express + api, pinned) over one queue, for the pyqueue
// interop tests: serves the board on a free port, GETs one of its API paths
// itself and prints ONE JSON line {"status", "body"}; logs go to stderr.
//
// Usage: node tests/interop/board_side.mjs '{"redis": URL, "queue": Q, "path": "/api/queues/Q/metrics"}'

import express from 'express';
import { Queue } from 'bullmq';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';

const args = JSON.parse(process.argv[2] || '{}');
const queue = new Queue(args.queue, {
  connection: { url: args.redis, maxRetriesPerRequest: null },
  prefix: args.prefix || 'bull',
});
const serverAdapter = new ExpressAdapter();
serverAdapter.setBasePath('/ui');
createBullBoard({ queues: [new BullMQAdapter(queue)], serverAdapter });
const app = express();
app.use('/ui', serverAdapter.getRouter());

setTimeout(() => { process.stdout.write('{"error": "hard timeout"}\n'); process.exit(2); }, 30000).unref();
const server = app.listen(0, '127.0.0.1', async () => {
  let result;
  try {
    const reply = await fetch(`http://127.0.0.1:${server.address().port}/ui${args.path}`);
    result = { status: reply.status, body: await reply.json() };
  } catch (err) {
    result = { error: String(err) };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  server.close();
  await queue.close();
  process.exit(result.error ? 1 : 0);
});
