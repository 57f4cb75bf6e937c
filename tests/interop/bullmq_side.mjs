#!/usr/bin/env node
// BullMQ (Node) side of the pyqueue interop tests.
//
// Usage: node tests/interop/bullmq_side.mjs <command> '<json-args>'
//
// Common JSON args: redis (URL, e.g. "redis://127.0.0.1:6390/0"),
// prefix (default "bull"), queue.
// Prints exactly ONE line of JSON on stdout (the result); every log line goes
// to stderr. Exit code 0 on success; on failure exit code 1 and the stdout
// line is {"error": "...", "stack": "..."} (exit code 2 when the hard
// watchdog fires: args.hardTimeoutMs, default timeoutMs + 30000).
//
// Commands:
//   add     {queue, jobs:[{name, data, opts}]}          -> {"ids": [...]}
//   work    {queue, count, concurrency?, timeoutMs?}   -> {"processed": [...], "timedOut": bool}
//   counts  {queue}                                     -> {"counts": {...}}
//   metrics {queue, type, start?, end?}                 -> {"metrics": getMetrics(...)}
//   (work also takes metricsPoints: the worker keeps BullMQ metrics with that many points)
//   state   {queue, id}                                 -> {"state": "..."}
//   job     {queue, id}                                 -> {"job": {...} | null}
//   events  {queue, count, lastEventId?, timeoutMs?}   -> {"events": [...], "timedOut": bool}
//   pause   {queue}                                     -> {"ok": true, "paused": true}
//   resume  {queue}                                     -> {"ok": true, "paused": false}
//
// Processor used by `work` (driven by job.data), in this order:
//   data.sleepMs (number)       -> wait that many ms
//   data.progress (not undef)   -> await job.updateProgress(data.progress)
//   data.unrecoverable (string) -> throw new UnrecoverableError(data.unrecoverable)
//   data.fail (string)          -> throw new Error(data.fail)
//   otherwise                   -> return data.result !== undefined ? data.result : {echo: data}

import { Queue, QueueEvents, Worker, Job, UnrecoverableError } from 'bullmq';

// Keep stdout clean: anything that uses console.log/info goes to stderr.
const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
console.log = log;
console.info = log;
console.debug = log;

let printed = false;
function emit(obj) {
  if (printed) return;
  printed = true;
  process.stdout.write(JSON.stringify(obj, safeReplacer()) + '\n');
}

// Drops functions, stringifies bigints and cuts true cycles only (an object
// may appear several times, e.g. job.data inside {echo: data}).
function safeReplacer() {
  const ancestors = [];
  return function (key, value) {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'function') return undefined;
    if (value === null || typeof value !== 'object') return value;
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(value)) return undefined;
    ancestors.push(value);
    return value;
  };
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

function connectionFrom(args) {
  const url = args.redis || 'redis://127.0.0.1:6379/0';
  // maxRetriesPerRequest: null is what BullMQ wants for blocking connections.
  return { url, maxRetriesPerRequest: null };
}

function baseOpts(args) {
  return { connection: connectionFrom(args), prefix: args.prefix || 'bull' };
}

function requireField(args, field) {
  if (args[field] === undefined || args[field] === null || args[field] === '') {
    throw new Error(`missing required field "${field}"`);
  }
  return args[field];
}

async function withQueue(args, fn) {
  const queue = new Queue(requireField(args, 'queue'), baseOpts(args));
  queue.on('error', err => log('queue error:', err && err.message));
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

function errorText(err) {
  return err && err.message !== undefined ? err.message : String(err);
}

// ---------------------------------------------------------------- commands

async function cmdAdd(args) {
  const jobs = requireField(args, 'jobs');
  if (!Array.isArray(jobs)) throw new Error('"jobs" must be an array');
  return withQueue(args, async queue => {
    const ids = [];
    for (const j of jobs) {
      const job = await queue.add(j.name, j.data === undefined ? {} : j.data, j.opts || {});
      ids.push(job.id);
    }
    return { ids };
  });
}

async function cmdWork(args) {
  const queueName = requireField(args, 'queue');
  const count = Number(requireField(args, 'count'));
  const concurrency = Number(args.concurrency || 1);
  const timeoutMs = Number(args.timeoutMs || 30000);

  const processed = [];
  let finalCount = 0; // final outcomes counted by the processor (predicted)
  let worker;
  let closePromise = null;
  let doneResolve;
  const done = new Promise(r => (doneResolve = r));

  // Start closing as early as possible (from inside the processor, before the
  // job is moved to completed/failed) so the worker does not prefetch a next
  // job as part of finishing this one.
  const startClose = () => {
    if (!closePromise) {
      closePromise = worker.close();
      closePromise.then(() => doneResolve(), () => doneResolve());
    }
  };

  const isFinalFailure = (job, err) => {
    if (err instanceof UnrecoverableError || (err && err.name === 'UnrecoverableError')) return true;
    const attempts = Math.max(1, Number((job.opts && job.opts.attempts) || 1));
    return Number(job.attemptsMade || 0) >= attempts;
  };

  const processor = async job => {
    const data = job.data || {};
    const attempts = Math.max(1, Number((job.opts && job.opts.attempts) || 1));
    const lastAttempt = Number(job.attemptsMade || 0) + 1 >= attempts;
    const noteFinal = () => {
      finalCount += 1;
      if (finalCount >= count) startClose();
    };
    if (typeof data.sleepMs === 'number' && data.sleepMs > 0) await sleep(data.sleepMs);
    if (data.progress !== undefined && data.progress !== null) await job.updateProgress(data.progress);
    if (typeof data.unrecoverable === 'string') {
      noteFinal();
      throw new UnrecoverableError(data.unrecoverable);
    }
    if (typeof data.fail === 'string') {
      if (lastAttempt) noteFinal();
      throw new Error(data.fail);
    }
    noteFinal();
    return data.result !== undefined ? data.result : { echo: data };
  };

  const metrics = args.metricsPoints ? { metrics: { maxDataPoints: Number(args.metricsPoints) } } : {};
  worker = new Worker(queueName, processor, { ...baseOpts(args), concurrency, ...metrics });
  worker.on('error', err => log('worker error:', errorText(err)));
  worker.on('completed', (job, result) => {
    processed.push({ id: job.id, name: job.name, data: job.data, attemptsMade: job.attemptsMade, result });
    if (processed.length >= count) startClose();
  });
  worker.on('failed', (job, err) => {
    if (!job) {
      log('failed event without job:', errorText(err));
      return;
    }
    if (!isFinalFailure(job, err)) {
      log(`job ${job.id} failed attempt ${job.attemptsMade}: ${errorText(err)} (will retry)`);
      return;
    }
    processed.push({ id: job.id, name: job.name, data: job.data, attemptsMade: job.attemptsMade, error: errorText(err) });
    if (processed.length >= count) startClose();
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = processed.length < count;
    startClose();
  }, timeoutMs);
  if (count <= 0) startClose();
  await done;
  clearTimeout(timer);
  return { processed, timedOut };
}

async function cmdCounts(args) {
  return withQueue(args, async queue => ({ counts: await queue.getJobCounts() }));
}

async function cmdMetrics(args) {
  const type = requireField(args, 'type');
  return withQueue(args, async queue => ({ metrics: await queue.getMetrics(type, args.start || 0, args.end === undefined ? -1 : args.end) }));
}

async function cmdState(args) {
  const id = String(requireField(args, 'id'));
  return withQueue(args, async queue => ({ state: await queue.getJobState(id) }));
}

async function cmdJob(args) {
  const id = String(requireField(args, 'id'));
  return withQueue(args, async queue => {
    const job = await Job.fromId(queue, id);
    if (!job) return { job: null };
    const json = job.toJSON();
    return {
      job: {
        ...json,
        returnvalue: job.returnvalue,
        failedReason: job.failedReason,
        attemptsMade: job.attemptsMade,
        stacktrace: job.stacktrace,
      },
    };
  });
}

// QueueEvents has no wildcard event; it calls this.emit(name, args, streamId)
// for every stream entry (emit(name, streamId) for "drained"), plus a second
// emit(`${name}:${jobId}`, ...) when the entry has a jobId. Capture through a
// subclass overriding emit and skip the per-job duplicates.
class CapturingQueueEvents extends QueueEvents {
  constructor(name, opts, sink) {
    super(name, opts);
    this._sink = sink;
  }
  emit(event, ...rest) {
    const isStreamId = v => typeof v === 'string' && /^\d+-\d+$/.test(v);
    if (this._sink) {
      if (rest.length === 1 && isStreamId(rest[0])) {
        this._sink({ event, id: rest[0] });
      } else if (rest.length >= 2 && isStreamId(rest[1]) && rest[0] && typeof rest[0] === 'object') {
        const a = rest[0];
        if (!(a.jobId !== undefined && event.endsWith(`:${a.jobId}`))) {
          this._sink({ event, id: rest[1], ...a });
        }
      }
    }
    return super.emit(event, ...rest);
  }
}

async function cmdEvents(args) {
  const queueName = requireField(args, 'queue');
  const count = Number(requireField(args, 'count'));
  const timeoutMs = Number(args.timeoutMs || 10000);
  const events = [];
  let doneResolve;
  const done = new Promise(r => (doneResolve = r));
  const qe = new CapturingQueueEvents(
    queueName,
    { ...baseOpts(args), lastEventId: args.lastEventId !== undefined ? String(args.lastEventId) : '0', blockingTimeout: 1000 },
    ev => {
      if (events.length < count) events.push(ev);
      if (events.length >= count) doneResolve();
    },
  );
  qe.on('error', err => log('queue events error:', errorText(err)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = events.length < count;
    doneResolve();
  }, timeoutMs);
  if (count <= 0) doneResolve();
  await done;
  clearTimeout(timer);
  await qe.close();
  return { events: events.slice(0, count), timedOut };
}

async function cmdPause(args) {
  return withQueue(args, async queue => {
    await queue.pause();
    return { ok: true, paused: await queue.isPaused() };
  });
}

async function cmdResume(args) {
  return withQueue(args, async queue => {
    await queue.resume();
    return { ok: true, paused: await queue.isPaused() };
  });
}

const COMMANDS = {
  add: cmdAdd,
  work: cmdWork,
  counts: cmdCounts,
  metrics: cmdMetrics,
  state: cmdState,
  job: cmdJob,
  events: cmdEvents,
  pause: cmdPause,
  resume: cmdResume,
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
  // Watchdog: an unreachable Redis makes ioredis retry forever; fail instead.
  const hardMs = Number(args.hardTimeoutMs || Number(args.timeoutMs || 30000) + 30000);
  setTimeout(() => {
    log(`bullmq_side: hard timeout after ${hardMs} ms`);
    emit({ error: `hard timeout after ${hardMs} ms (is Redis reachable at ${args.redis}?)` });
    process.exit(2);
  }, hardMs).unref();
  return fn(args);
}

main().then(
  result => {
    emit(result);
    process.exitCode = 0;
    // Everything is closed; exit explicitly in case a stray handle lingers.
    setTimeout(() => process.exit(0), 50).unref();
  },
  err => {
    log('bullmq_side error:', err && err.stack ? err.stack : String(err));
    emit({ error: errorText(err), stack: err && err.stack ? String(err.stack) : undefined });
    process.exit(1);
  },
);
