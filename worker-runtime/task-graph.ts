import { create, type DescMessage, type Message, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type TaskError as TaskErrorMessage, TaskState } from "../gen/taskwire/v1/task_pb.ts";
import { stateName, TaskError, type TaskMethod } from "../sdk/core/index.ts";
import type { TaskContext } from "./task-context.ts";

/**
 * What a step's failure (FAILED, CANCELLED or EXPIRED) does to the graph: by
 * default the graph fails, naming the step; with `fallback` the step's output
 * is that message instead; with `recover` it is made from the step's error.
 */
export type StepOptions<O extends DescMessage> = FailStep | IgnoreStep<O> | ContinueStep<O>;

/** A step whose failure fails the graph (the default). */
export interface FailStep {
  /** The graph fails, naming the step. */
  readonly onFailure?: "fail";
}

/** A step whose failure is replaced by a fixed output. */
export interface IgnoreStep<O extends DescMessage> {
  /** The graph goes on with `fallback` as the step's output. */
  readonly onFailure: "ignore";
  /** The step's output when it failed. */
  readonly fallback: MessageInitShape<O>;
}

/** A step whose failure is turned into an output. */
export interface ContinueStep<O extends DescMessage> {
  /** The graph goes on with what `recover` makes of the error as the step's output. */
  readonly onFailure: "continue";
  /** The step's output made from its error. */
  readonly recover: (error: TaskErrorMessage) => MessageInitShape<O>;
}

/** One node of a graph: its task kinds (one, or several run at once), and how the next input is made. */
interface Node {
  readonly methods: readonly TaskMethod[];
  readonly options: StepOptions<DescMessage>;
  /** The input of this node's tasks from the previous node's outputs (one, or a list for parallel steps). */
  readonly input: ((previous: Message | Message[]) => MessageInitShape<DescMessage>) | undefined;
}

/** The outputs of parallel branches, in order, typed per branch. */
export type BranchOutputs<B extends readonly TaskMethod[]> = { [K in keyof B]: MessageShape<B[K]["output"]> };

/**
 * A typed graph of task kinds, run as child tasks of the task whose handler it
 * is: each step's input is the previous step's output, so their types must
 * match (a mismatch does not compile), or a function maps one to the other.
 *
 * ```ts
 * const pipeline = taskGraph(steps.parse)          // ParseRequest -> Parsed
 *   .next(steps.count)                            // Parsed -> Counted
 *   .next(steps.report, (c) => ({ line: `${c.count} words` })); // Counted -> ReportResponse
 * implementFamilyService({ pipeline: pipeline.handler() });  // rpc Pipeline(ParseRequest) returns (ReportResponse)
 * ```
 *
 * Each step is a child task, keyed by its place in the graph: the handler
 * waits for each without a worker slot (ctx.waitForChildren) and runs again
 * from the start when it ends, finding the steps done so far instead of
 * running them twice. Cancelling the task cancels the step that runs.
 */
export class TaskGraph<In extends DescMessage, Out extends DescMessage> {
  private readonly nodes: readonly Node[];
  private constructor(nodes: readonly Node[]) {
    this.nodes = nodes;
  }

  /** A graph whose first step runs `method` on the graph's input. */
  static of<I extends DescMessage, O extends DescMessage>(
    method: TaskMethod<I, O>,
    options: StepOptions<O> = {},
  ): TaskGraph<I, O> {
    return new TaskGraph([{ methods: [method], options: options as StepOptions<DescMessage>, input: undefined }]);
  }

  /** Adds a step whose input is the previous step's output, of the same message type. */
  next<N extends DescMessage>(method: TaskMethod<Out, N>, options?: StepOptions<N>): TaskGraph<In, N>;
  /** Adds a step whose input `map` makes from the previous step's output. */
  next<I extends DescMessage, N extends DescMessage>(
    method: TaskMethod<I, N>,
    map: (output: MessageShape<Out>) => MessageInitShape<I>,
    options?: StepOptions<N>,
  ): TaskGraph<In, N>;
  next(method: TaskMethod, mapOrOptions?: unknown, options?: unknown): TaskGraph<In, DescMessage> {
    const map = typeof mapOrOptions === "function" ? (mapOrOptions as Node["input"]) : undefined;
    const own = ((typeof mapOrOptions === "function" ? options : mapOrOptions) ?? {}) as StepOptions<DescMessage>;
    return new TaskGraph([...this.nodes, { methods: [method], options: own, input: map }]);
  }

  /**
   * Adds steps that run at once, each on the previous step's output (of their
   * input type), then a step whose input `join` makes from all their outputs.
   */
  all<const B extends readonly TaskMethod<Out, DescMessage>[], I extends DescMessage, N extends DescMessage>(
    branches: B,
    next: TaskMethod<I, N>,
    join: (outputs: BranchOutputs<B>) => MessageInitShape<I>,
    options?: StepOptions<N>,
  ): TaskGraph<In, N> {
    return new TaskGraph([
      ...this.nodes,
      { methods: branches, options: {}, input: undefined },
      { methods: [next], options: (options ?? {}) as StepOptions<DescMessage>, input: join as Node["input"] },
    ]);
  }

  /** The handler of an rpc taking the graph's input and returning its output. */
  handler(): (request: MessageShape<In>, ctx: TaskContext) => Promise<MessageShape<Out>> {
    return async (request, ctx) => {
      let previous: Message | Message[] = request;
      for (const [rank, node] of this.nodes.entries()) {
        const input: MessageInitShape<DescMessage> = node.input ? node.input(previous) : (previous as Message);
        const ids: string[] = await Promise.all(
          node.methods.map((method, branch) =>
            ctx.spawn(method, create(method.input, input), {
              key: node.methods.length === 1 ? `step-${rank}` : `step-${rank}-${branch}`,
              onFailure: "continue",
            }),
          ),
        );
        await ctx.waitForChildren();
        const outputs: Message[] = await Promise.all(
          node.methods.map((method, i) => stepOutput(ctx, ids[i] as string, method, node.options, rank)),
        );
        previous = node.methods.length === 1 ? (outputs[0] as Message) : outputs;
      }
      return previous as MessageShape<Out>;
    };
  }
}

/** The graph whose first step runs `method`: see {@link TaskGraph}. */
export function taskGraph<I extends DescMessage, O extends DescMessage>(
  method: TaskMethod<I, O>,
  options?: StepOptions<O>,
): TaskGraph<I, O> {
  return TaskGraph.of(method, options);
}

/** A step's output: its result, or what its failure policy makes of its failure. */
async function stepOutput(
  ctx: TaskContext,
  taskId: string,
  method: TaskMethod,
  options: StepOptions<DescMessage>,
  rank: number,
): Promise<Message> {
  const outcome = await ctx.child(taskId, method.output);
  if (outcome.state === TaskState.SUCCEEDED && outcome.result) return outcome.result;
  const error =
    outcome.error ??
    ({ message: `ended ${stateName(outcome.state)}`, code: Code.Unknown } as unknown as TaskErrorMessage);
  if (options.onFailure === "ignore") return create(method.output, options.fallback);
  if (options.onFailure === "continue") return create(method.output, options.recover(error));
  throw new TaskError(
    `step ${rank + 1} (${method.workerType}/${method.name}, task ${taskId}) ended ${stateName(outcome.state)}: ${error.message}`,
    Code.Aborted,
    { retryable: false },
  );
}
