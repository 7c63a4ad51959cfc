import { create } from "@bufbuild/protobuf";
import { timestampFromDate, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { type Schedule, ScheduleInfoSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy } from "../../gen/taskwire/v1/task_pb.ts";
import { decideTick, planOf, scheduledTaskKey, topology } from "../core/index.ts";
import { type ScheduleStore, tickOf } from "./schedule-store.ts";

/** How often a ticker looks for schedules whose armed time went missing. */
const repairEveryMs = 30_000;
/** A time this overdue without its armed message lost its tick: it is armed again. */
const lostAfterMs = 30_000;

/**
 * Fires one worker type's schedules: pulls the ticks the server makes of their
 * armed times from the shared consumer `<type>_ticks` (every worker and gateway
 * of the type pulls it; each tick goes to one), and for each submits the time's
 * task (its key makes a repeat the same task), records the firing by
 * compare-and-set and arms the next time, then acks. A crash in between
 * redelivers the tick, which finds the time recorded and only re-arms.
 *
 * Every 30 s it also arms any schedule of the type whose armed message is
 * missing (a gateway that wrote a schedule and died before arming it).
 */
export class ScheduleTicker {
  private readonly messages: ConsumerMessages;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private constructor(messages: ConsumerMessages) {
    this.messages = messages;
  }

  static async start(
    js: JetStreamClient,
    store: ScheduleStore,
    workerType: string,
    onError: (error: unknown) => void,
  ): Promise<ScheduleTicker> {
    const consumer = await js.consumers.get(
      topology.schedulerStream(workerType),
      topology.tickConsumerName(workerType),
    );
    const ticker = new ScheduleTicker(await consumer.consume({ max_messages: 100 }));
    // What fails once stopped (the connection closing under a repair) is no news.
    const report = (error: unknown) => {
      if (!ticker.stopped) onError(error);
    };
    ticker.timer = setInterval(() => void repair(store, workerType).catch(report), repairEveryMs);
    ticker.timer.unref();
    void repair(store, workerType).catch(report);
    void (async () => {
      for await (const msg of ticker.messages) {
        await fire(store, workerType, msg).then(
          () => msg.ack(),
          (error) => {
            msg.nak(1_000);
            report(error);
          },
        );
      }
    })();
    return ticker;
  }

  /** Stops pulling; a tick being fired is finished or redelivered later. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.messages.stop();
  }
}

async function fire(store: ScheduleStore, workerType: string, msg: JsMsg): Promise<void> {
  const tick = tickOf(msg.headers);
  const scheduleId = msg.subject.slice(topology.scheduleTickSubject(workerType, "").length);
  if (!tick) return; // not a tick of ours
  const timeMs = tick.time.getTime();
  for (;;) {
    const info = await store.read(workerType, scheduleId);
    // Deleted, paused, or changed since this time was armed: that change armed its own.
    if (!info || info.paused || info.generation !== tick.generation) return;
    const schedule = info.schedule as Schedule;
    const plan = planOf(schedule);
    const pending = info.nextTime && timestampMs(info.nextTime);
    if (pending === undefined || timeMs < pending) {
      // Fired already (a redelivery, or a second tick of a re-armed time): make sure the next is armed.
      if (pending !== undefined && !(await store.isArmed(workerType, scheduleId))) await store.arm(info, plan);
      return;
    }
    const now = Date.now();
    const previousUnfinished = plan.overlap !== OverlapPolicy.ALLOW_ALL && (await store.unfinished(info.lastTaskId));
    const decision = decideTick(plan, timeMs, now, previousUnfinished);
    const next = create(ScheduleInfoSchema, info);
    if (decision.action === "buffer") {
      next.bufferedTime = timestampFromDate(tick.time);
      const written = await store.write(next, info.revision);
      if (!written) continue;
      await store.arm(written, plan, decision.recheckAt);
      return;
    }
    if (decision.action === "fire") {
      next.lastTaskId = await store.submit(info, tick.time, scheduledTaskKey(scheduleId, tick.time));
      next.lastTime = timestampFromDate(tick.time);
      next.fired += 1n;
    } else next.skipped += 1n;
    next.skipped += BigInt(decision.next.skipped);
    next.bufferedTime = undefined;
    next.nextTime = decision.next.next && timestampFromDate(decision.next.next);
    const written = await store.write(next, info.revision);
    if (!written) continue; // changed meanwhile: decide again (a repeated submit is the same task)
    await store.arm(written, plan);
    return;
  }
}

/** Arms each schedule of the type whose next time has no armed message, unless its tick is likely in flight. */
async function repair(store: ScheduleStore, workerType: string): Promise<void> {
  for (const info of await store.listSchedules(workerType)) {
    if (info.paused || !info.nextTime) continue;
    const schedule = info.schedule as Schedule;
    const overdueMs = Date.now() - timestampMs(info.nextTime);
    if (overdueMs > 0 && overdueMs < lostAfterMs) continue;
    if (await store.isArmed(workerType, schedule.scheduleId)) continue;
    const plan = planOf(schedule);
    await store.arm(info, plan, info.bufferedTime ? new Date() : undefined);
  }
}
