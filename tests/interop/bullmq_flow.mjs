#!/usr/bin/env node
// BullMQ (Node) side of the pyqueue flow interop tests.
//
// Usage: node tests/interop/bullmq_flow.mjs <command> '<json-args>'
// Common JSON args: redis (URL), prefix (default "bull").
// Prints exactly ONE line of JSON on stdout; logs go to stderr; exit 1 on error.
//
// Commands:
//   add      {trees: [BullMQ flow tree]}           -> {"flows": [node]}  node = {queue, id, children}
//   work     {queues: [name], count, timeoutMs?}   -> {"processed": [{queue, id, name, result|error}], "timedOut"}
//            runs one worker per queue until `count` jobs finished for good (completed or
//            failed with no attempt left). Processor: data.fail (string) -> throw;
//            otherwise return {name, values: job.getChildrenValues(), ignored: job.getIgnoredChildrenFailures()}.
//   getflow  {queue, id, depth?}                   -> {"flow": node}  (FlowProducer.getFlow, as Bull Board's flow view)
//   deps     {queue, id}                           -> {"deps": job.getDependencies(), "counts": job.getDependenciesCount()}
//   admin    {queue, op: "drain"|"clean"|"obliterate", delayed?, state?}
//            Queue.drain(delayed) / clean(0, 0, state) / obliterate({force: true})
//            -> {"done": op}
//   board    {queues: [name], queue, id}           -> Bull Board's answer to GET /api/queues/:queue/:id/flow
//            (@bull-board/api's route handler, with a BullMQAdapter per queue)

import { FlowProducer, Worker, Job, Queue } from 'bullmq';

const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
console.log = log;
console.info = log;

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function opts(args) {
  return { connection: { url: args.redis, maxRetriesPerRequest: null }, prefix: args.prefix || 'bull' };
}

function shape(node) {
  return {
    queue: node.job.queueName,
    id: node.job.id,
    name: node.job.name,
    children: (node.children || []).map(shape),
  };
}

async function cmdAdd(args) {
  const producer = new FlowProducer(opts(args));
  try {
    const flows = [];
    for (const tree of args.trees) flows.push(shape(await producer.add(tree)));
    return { flows };
  } finally {
    await producer.close();
  }
}

async function cmdWork(args) {
  const count = Number(args.count);
  const timeoutMs = Number(args.timeoutMs || 20000);
  const processed = [];
  let resolveDone;
  const done = new Promise(r => (resolveDone = r));
  const note = entry => {
    processed.push(entry);
    if (processed.length >= count) resolveDone();
  };
  const processor = async job => {
    const data = job.data || {};
    if (typeof data.fail === 'string') throw new Error(data.fail);
    const values = await job.getChildrenValues();
    const ignored = typeof job.getIgnoredChildrenFailures === 'function'
      ? await job.getIgnoredChildrenFailures() : {};
    return { name: job.name, values, ignored };
  };
  const workers = args.queues.map(queue => {
    const worker = new Worker(queue, processor, { ...opts(args), concurrency: 1 });
    worker.on('error', err => log('worker error:', err && err.message));
    worker.on('completed', (job, result) => note({ queue, id: job.id, name: job.name, result }));
    worker.on('failed', (job, err) => {
      if (!job) return;
      const attempts = Math.max(1, Number((job.opts && job.opts.attempts) || 1));
      if (job.attemptsMade >= attempts || (err && err.name === 'UnrecoverableError')) {
        note({ queue, id: job.id, name: job.name, error: err && err.message });
      }
    });
    return worker;
  });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; resolveDone(); }, timeoutMs);
  await done;
  clearTimeout(timer);
  await Promise.all(workers.map(w => w.close()));
  return { processed, timedOut };
}

async function cmdGetFlow(args) {
  const producer = new FlowProducer(opts(args));
  try {
    const node = await producer.getFlow({ id: args.id, queueName: args.queue, depth: args.depth || 10 });
    return { flow: node ? shape(node) : null };
  } finally {
    await producer.close();
  }
}

async function cmdDeps(args) {
  const queue = new Queue(args.queue, opts(args));
  try {
    const job = await Job.fromId(queue, args.id);
    return { deps: await job.getDependencies(), counts: await job.getDependenciesCount() };
  } finally {
    await queue.close();
  }
}

async function cmdAdmin(args) {
  const queue = new Queue(args.queue, opts(args));
  try {
    if (args.op === 'drain') await queue.drain(Boolean(args.delayed));
    else if (args.op === 'clean') await queue.clean(0, 0, args.state);
    else if (args.op === 'obliterate') await queue.obliterate({ force: true });
    else throw new Error(`unknown op ${args.op}`);
    return { done: args.op };
  } finally {
    await queue.close();
  }
}

async function cmdBoard(args) {
  const { BullMQAdapter } = await import('@bull-board/api/bullMQAdapter');
  const { jobFlowHandler } = await import('@bull-board/api/dist/handlers/jobFlow.js');
  const queues = new Map();
  const open = [];
  for (const name of args.queues) {
    const queue = new Queue(name, opts(args));
    open.push(queue);
    queues.set(name, new BullMQAdapter(queue));
  }
  try {
    const res = await jobFlowHandler({ queues, params: { queueName: args.queue, jobId: String(args.id) },
                                       query: { depth: 10, maxChildren: 100 } });
    return { status: res.status, body: res.body };
  } finally {
    await Promise.all(open.map(q => q.close()));
  }
}

const COMMANDS = { add: cmdAdd, work: cmdWork, getflow: cmdGetFlow, deps: cmdDeps, board: cmdBoard,
                   admin: cmdAdmin };

const [command, raw] = process.argv.slice(2);
const args = raw ? JSON.parse(raw) : {};
setTimeout(() => {
  emit({ error: 'hard timeout' });
  process.exit(2);
}, Number(args.timeoutMs || 20000) + 30000).unref();
COMMANDS[command](args).then(
  result => { emit(result); setTimeout(() => process.exit(0), 50).unref(); },
  err => { log(err && err.stack); emit({ error: String(err && err.message) }); process.exit(1); },
);
