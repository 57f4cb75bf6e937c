#!/usr/bin/env node
// BullMQ (Node) side of the pyqueue job-scheduler and deduplication interop
// tests: the scheduler operations that bullmq_side.mjs does not have.
//
// Usage: node tests/interop/bullmq_sched.mjs <command> '<json-args>'
//
// Same conventions as bullmq_side.mjs: JSON args carry redis (URL), prefix
// (default "bull") and queue; exactly ONE line of JSON on stdout; logs go to
// stderr; exit 0 on success, 1 with {"error", "stack"} on failure, 2 when the
// watchdog (args.hardTimeoutMs, default 30000) fires.
//
// Commands:
//   upsert     {queue, id, repeat, template?}   -> {"job": {id, name, data, opts} | null}
//              (queue.upsertJobScheduler(id, repeat, template); the job as
//              stored, read back with Job.fromId)
//   scheduler  {queue, id}                      -> {"scheduler": {...} | null}
//   schedulers {queue}                          -> {"schedulers": [...]}
//   remove     {queue, id}                      -> {"removed": bool}
//   add        {queue, jobs:[{name, data, opts}]} -> {"jobs": [{id, name, data}]}
//              (queue.add, returning what add returned: the kept job for a
//              deduplicated add)

import { Queue, Job } from 'bullmq';

const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
console.log = log;
console.info = log;
console.debug = log;
console.warn = log;

let printed = false;
function emit(obj) {
  if (printed) return;
  printed = true;
  process.stdout.write(JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
}

function requireField(args, field) {
  if (args[field] === undefined || args[field] === null || args[field] === '') {
    throw new Error(`missing required field "${field}"`);
  }
  return args[field];
}

async function withQueue(args, fn) {
  const queue = new Queue(requireField(args, 'queue'), {
    connection: { url: args.redis || 'redis://127.0.0.1:6379/0', maxRetriesPerRequest: null },
    prefix: args.prefix || 'bull',
  });
  queue.on('error', err => log('queue error:', err && err.message));
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

async function cmdUpsert(args) {
  const id = String(requireField(args, 'id'));
  const repeat = requireField(args, 'repeat');
  return withQueue(args, async queue => {
    const job = args.template === undefined
      ? await queue.upsertJobScheduler(id, repeat)
      : await queue.upsertJobScheduler(id, repeat, args.template);
    // The returned Job has client-only fields; read back what was stored.
    const stored = job ? await Job.fromId(queue, job.id) : null;
    if (!stored) return { job: null, returnedId: job ? job.id : null };
    return { job: { id: stored.id, name: stored.name, data: stored.data, opts: stored.opts } };
  });
}

async function cmdScheduler(args) {
  const id = String(requireField(args, 'id'));
  return withQueue(args, async queue => ({ scheduler: (await queue.getJobScheduler(id)) || null }));
}

async function cmdSchedulers(args) {
  return withQueue(args, async queue => ({ schedulers: await queue.getJobSchedulers() }));
}

async function cmdRemove(args) {
  const id = String(requireField(args, 'id'));
  return withQueue(args, async queue => ({ removed: await queue.removeJobScheduler(id) }));
}

async function cmdAdd(args) {
  const jobs = requireField(args, 'jobs');
  return withQueue(args, async queue => {
    const out = [];
    for (const j of jobs) {
      const job = await queue.add(j.name, j.data === undefined ? {} : j.data, j.opts || {});
      out.push({ id: job.id, name: job.name, data: job.data });
    }
    return { jobs: out };
  });
}

const COMMANDS = {
  upsert: cmdUpsert,
  scheduler: cmdScheduler,
  schedulers: cmdSchedulers,
  remove: cmdRemove,
  add: cmdAdd,
};

async function main() {
  const [command, rawArgs] = process.argv.slice(2);
  const fn = COMMANDS[command];
  if (!fn) throw new Error(`unknown command ${JSON.stringify(command)}; expected one of ${Object.keys(COMMANDS).join(', ')}`);
  let args;
  try {
    args = rawArgs ? JSON.parse(rawArgs) : {};
  } catch (e) {
    throw new Error(`invalid JSON args: ${e.message}`);
  }
  const hardMs = Number(args.hardTimeoutMs || 30000);
  setTimeout(() => {
    log(`bullmq_sched: hard timeout after ${hardMs} ms`);
    emit({ error: `hard timeout after ${hardMs} ms (is Redis reachable at ${args.redis}?)` });
    process.exit(2);
  }, hardMs).unref();
  return fn(args);
}

main().then(
  result => {
    emit(result);
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 50).unref();
  },
  err => {
    log('bullmq_sched error:', err && err.stack ? err.stack : String(err));
    emit({ error: err && err.message !== undefined ? err.message : String(err), stack: err && err.stack ? String(err.stack) : undefined });
    process.exit(1);
  },
);
