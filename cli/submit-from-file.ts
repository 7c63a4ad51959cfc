import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { type DescMessage, fromJson, type JsonValue } from "@bufbuild/protobuf";
import type { SubmitItem, SubmitManyProgress, TaskwireClient } from "../sdk/client/index.ts";
import type { TaskMethod } from "../sdk/core/index.ts";

/** Options of {@link submitFromFile}. */
export interface SubmitFromFileOptions {
  /** Records progress under this name; a rerun resumes after the last acknowledged line. */
  checkpoint?: string;
  /** Where progress goes: a bar redrawn in place on a terminal, else a line every 2 s. */
  progress: NodeJS.WriteStream;
  out: (line: string) => void;
}

/**
 * `taskwire submit <type>/<Method> --from tasks.jsonl`: one request per line
 * (the request message in JSON), read lazily and submitted through
 * `client.submitMany`, so memory stays flat however long the file.
 */
export async function submitFromFile(
  client: TaskwireClient,
  method: TaskMethod<DescMessage>,
  path: string,
  options: SubmitFromFileOptions,
): Promise<void> {
  const total = await checkLines(method, path);
  const started = Date.now();
  const report = reporter(options.progress, total, started);
  const summary = await client.submitMany(method, requests(method, path), {
    checkpoint: options.checkpoint,
    onProgress: report.update,
  });
  report.end(summary);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const resumed = summary.resumedFrom > 0 ? `, resumed after line ${summary.resumedFrom}` : "";
  options.out(
    `submitted ${summary.acknowledged - summary.resumedFrom - summary.failed} of ${total} tasks in ${seconds}s (${summary.duplicates} duplicates, ${summary.failed} refused${resumed})`,
  );
  for (const { index, error } of summary.failures.slice(0, 10)) options.out(`${path}:${index + 1}: ${error.message}`);
  if (summary.failed > 0) throw new Error(`${summary.failed} line(s) of ${path} were refused`);
}

async function* requests(method: TaskMethod<DescMessage>, path: string): AsyncGenerator<SubmitItem<DescMessage>> {
  let line = 0;
  for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY })) {
    line++;
    if (!text.trim()) throw new Error(`${path}:${line}: an empty line (each line is one ${method.input.typeName})`);
    let json: JsonValue;
    try {
      json = JSON.parse(text) as JsonValue;
    } catch (error) {
      throw new Error(`${path}:${line}: not valid JSON: ${(error as Error).message}`);
    }
    try {
      yield { request: fromJson(method.input, json) };
    } catch (error) {
      throw new Error(`${path}:${line}: not a ${method.input.typeName}: ${(error as Error).message}`);
    }
  }
}

/**
 * Reads the whole file once before anything is submitted: its line count, and its
 * first bad line, if any, refuses it whole (a file refused halfway would leave
 * its first part submitted, and a plain rerun would submit that part again).
 */
async function checkLines(method: TaskMethod<DescMessage>, path: string): Promise<number> {
  let lines = 0;
  try {
    for await (const _ of requests(method, path)) lines++;
  } catch (error) {
    throw new Error(`${(error as Error).message}; nothing was submitted`);
  }
  return lines;
}

function reporter(stream: NodeJS.WriteStream, total: number, started: number) {
  let lastLine = 0;
  const describe = (p: SubmitManyProgress) => {
    const done = p.acknowledged;
    const elapsed = (Date.now() - started) / 1000;
    const rate = (done - p.resumedFrom) / Math.max(elapsed, 0.001);
    const eta = rate > 0 ? Math.ceil((total - done) / rate) : 0;
    return { done, rate: Math.round(rate), eta };
  };
  return {
    update(p: SubmitManyProgress) {
      const { done, rate, eta } = describe(p);
      if (stream.isTTY) {
        const width = 30;
        const filled = total > 0 ? Math.round((done / total) * width) : width;
        stream.write(`\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total} ${rate}/s ETA ${eta}s `);
      } else if (Date.now() - lastLine >= 2_000) {
        lastLine = Date.now();
        stream.write(`${done} of ${total} submitted, ${rate}/s, ETA ${eta}s\n`);
      }
    },
    end(p: SubmitManyProgress) {
      if (stream.isTTY) stream.write(`\r${" ".repeat(80)}\r`);
      else stream.write(`${p.acknowledged} of ${total} submitted\n`);
    },
  };
}
