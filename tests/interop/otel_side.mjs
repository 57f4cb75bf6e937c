#!/usr/bin/env node
// BullMQ (Node) with bullmq-otel, for pyqueue's cross-language tracing tests.
//
// Usage: node tests/interop/otel_side.mjs <command> '<json-args>'
// Args: redis (URL), queue, prefix (default "bull").
// Commands (each prints ONE JSON line: {"spans": [...], ...}; logs go to stderr):
//   produce {queue, name}      adds one job inside a span "node-request"  -> {"id", "spans"}
//   consume {queue, count}     a Worker processes count jobs              -> {"spans"}
// Spans come from the SDK's in-memory exporter: {name, kind, traceId, spanId,
// parentSpanId, attributes}.

import { Queue, Worker } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

const log = (...a) => process.stderr.write(a.map(String).join(' ') + '\n');
console.log = log;

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());

function spans() {
  return exporter.getFinishedSpans().map(s => ({
    name: s.name,
    kind: s.kind,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: (s.parentSpanContext && s.parentSpanContext.spanId) || s.parentSpanId || null,
    attributes: s.attributes,
  }));
}

function opts(args) {
  return {
    connection: { url: args.redis, maxRetriesPerRequest: null },
    prefix: args.prefix || 'bull',
    telemetry: new BullMQOtel('pyqueue-interop'),
  };
}

async function produce(args) {
  const queue = new Queue(args.queue, opts(args));
  try {
    const tracer = trace.getTracer('node-test');
    const id = await tracer.startActiveSpan('node-request', async span => {
      try {
        const job = await queue.add(args.name || 'node-job', { from: 'node' });
        return job.id;
      } finally {
        span.end();
      }
    });
    return { id, spans: spans() };
  } finally {
    await queue.close();
  }
}

async function consume(args) {
  const count = Number(args.count || 1);
  let seen = 0;
  let done;
  const finished = new Promise(r => (done = r));
  const worker = new Worker(args.queue, async () => ({ ok: true }), opts(args));
  worker.on('completed', () => { seen += 1; if (seen >= count) done(); });
  worker.on('error', err => log('worker error', err && err.message));
  const timer = setTimeout(done, Number(args.timeoutMs || 20000));
  await finished;
  clearTimeout(timer);
  await worker.close();
  return { processed: seen, spans: spans() };
}

const COMMANDS = { produce, consume };
const [command, raw] = process.argv.slice(2);
const args = raw ? JSON.parse(raw) : {};
setTimeout(() => { process.stdout.write(JSON.stringify({ error: 'hard timeout' }) + '\n'); process.exit(2); },
  Number(args.timeoutMs || 20000) + 30000).unref();
COMMANDS[command](args).then(
  result => { process.stdout.write(JSON.stringify(result) + '\n'); setTimeout(() => process.exit(0), 50).unref(); },
  err => { log(err && err.stack ? err.stack : String(err)); process.stdout.write(JSON.stringify({ error: String(err) }) + '\n'); process.exit(1); },
);
