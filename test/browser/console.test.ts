import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildConsoleIfStale } from "../../cli/console-build.ts";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { NonRetryableError } from "../../sdk/core/task-error.ts";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { familyService, implementFamilyService } from "../gen/family/v1/family_taskwire.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { exampleDigest, startDeployment, type TestDeployment } from "../support/deployment.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

/**
 * The globals of the page, for the functions the test runs in it (this
 * project's types have no DOM; a cast is erased before the function is sent).
 */
type PageGlobals = {
  location: { hash: string };
  document: { documentElement: { scrollWidth: number } };
  innerWidth: number;
  sessionStorage: { getItem(key: string): string | null };
  stillTheSamePage?: boolean;
};

const operatorKey = "tw_console_test_operator_key_0123456789";
const viewerKey = "tw_console_test_viewer_key_0123456789";
/** How long the page may take to show what the gateway streams (a queue's counts arrive every second or two). */
const pageWaitMs = 20_000;

/** The web console in Debian's chromium, against a real gateway, nats-server and worker processes. */
describe("the web console", () => {
  let deployment: TestDeployment;
  let client: TaskwireClient;
  let probeWorker: Worker;
  let browser: Browser;
  /** The console's build, the test's own: other tests may empty dist/ meanwhile. */
  let built: string;
  let desktop: BrowserContext;
  let page: Page;
  /** Probe labels whose attempts succeed from now on. */
  const healed = new Set<string>();
  /** Attempts started, by probe label. */
  const attempts = new Map<string, number>();

  beforeAll(async () => {
    built = await mkdtemp(join(tmpdir(), "taskwire-console-"));
    const consoleDirectory = await buildConsoleIfStale({ out: join(built, "console"), log: () => {} });
    deployment = await startDeployment(
      [hashService, reportService, probeService, familyService],
      [
        { name: "hasher", module: "examples/hash/hash-worker.ts", processes: 2 },
        { name: "reports", module: "examples/report/report-worker.ts", processes: 1 },
      ],
      {
        console: consoleDirectory as string,
        auth: {
          apiKeys: [
            { name: "operator", sha256: apiKeyHash(operatorKey), permissions: ["admin"] },
            { name: "viewer", sha256: apiKeyHash(viewerKey), permissions: ["read:*"] },
          ],
        },
        auditLog: () => {},
      },
    );
    client = await createClient({ gateway: deployment.gateway.url, token: operatorKey });
    probeWorker = await createWorker({
      nats: deployment.nats.url,
      services: [
        // A parent of three probe children, for the task page's family.
        implementFamilyService({
          async fan({ children }, ctx) {
            for (let i = 0; i < children; i++) await ctx.spawn(probeService.methods.run, { label: `child-${i}` });
            const counts = await ctx.waitForChildren();
            return { spawned: BigInt(counts.spawned), ended: BigInt(counts.ended) };
          },
          pipeline: async () => ({}),
        }),
        implementProbeService({
          async run({ label, nonRetryable }, ctx) {
            attempts.set(label, (attempts.get(label) ?? 0) + 1);
            if (nonRetryable && !healed.has(label)) throw new NonRetryableError(`${label} cannot work`);
            return { label, attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
    // A fresh, temporary profile (user data directory) per launch.
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await desktop.newPage();
    await signIn(page, operatorKey);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await probeWorker?.close();
    await client?.close();
    await deployment?.stop();
    if (built) await rm(built, { recursive: true, force: true });
  });

  /** Opens the console and signs in with an API key. */
  async function signIn(tab: Page, key: string) {
    await tab.goto(deployment.gateway.consoleUrl ?? "");
    await tab.getByLabel("API key or JWT").fill(key);
    await tab.getByRole("button", { name: "Sign in" }).click();
    await tab.getByRole("navigation", { name: "Pages" }).waitFor();
  }

  /** Goes to a page of the console by its hash, e.g. "#/workers". */
  async function open(tab: Page, hash: string) {
    await tab.evaluate((h) => {
      (globalThis as unknown as PageGlobals).location.hash = h;
    }, hash);
    await tab.locator("#page-title").waitFor();
  }

  const queueCard = (tab: Page, type: string): Locator => tab.getByRole("region", { name: type, exact: true });
  const count = (card: Locator, name: string) => card.locator(`dd[data-count="${name}"]`);
  const text = async (locator: Locator) => ((await locator.textContent()) ?? "").trim();

  it("loads, and shows every queue and the live worker processes", async () => {
    await open(page, "#/queues");
    for (const type of ["hasher", "reports", "probe"]) await queueCard(page, type).waitFor({ timeout: pageWaitMs });
    await expect.poll(() => text(page.getByRole("status").first()), { timeout: pageWaitMs }).toBe("live");
    await expect.poll(() => text(count(queueCard(page, "hasher"), "workers")), { timeout: pageWaitMs }).toBe("2");
    await open(page, "#/workers");
    const rows = page.locator("tr[data-worker]");
    // Two hashers, a reports worker, and this test's worker of probe and family.
    await expect.poll(() => rows.count(), { timeout: pageWaitMs }).toBe(4);
    const hasher = page.locator('tr[data-worker="hasher-0"]');
    expect(await text(hasher.locator('[data-label="Host"]'))).toBe(hostname());
    expect(await text(hasher.locator('[data-label="PID"]'))).toMatch(/^[1-9]\d*$/);
    expect(await text(hasher.locator('[data-label="Running"]'))).toBe("hasher 0/8");
  });

  it("counts a paused queue's tasks as they are submitted, live, and runs them once resumed", {
    timeout: 90_000,
  }, async () => {
    await open(page, "#/queues");
    // Set on the page: a reload would lose it.
    await page.evaluate(() => {
      (globalThis as unknown as PageGlobals).stillTheSamePage = true;
    });
    const hasher = queueCard(page, "hasher");
    await hasher.getByRole("button", { name: "Pause" }).click();
    await hasher.getByText("paused", { exact: true }).waitFor({ timeout: pageWaitMs });
    const submit = (n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => client.submitTask(hashService.methods.digest, { text: `paused ${i}` })),
      );
    const tasks = await submit(2);
    await expect.poll(() => text(count(hasher, "queued")), { timeout: pageWaitMs }).toBe("2");
    tasks.push(...(await submit(3)));
    await expect.poll(() => text(count(hasher, "queued")), { timeout: pageWaitMs }).toBe("5");
    expect(await text(count(hasher, "oldest"))).toMatch(/\d+s$/);
    await hasher.getByRole("button", { name: "Resume" }).click();
    await Promise.all(tasks.map((task) => task.result()));
    await expect.poll(() => text(count(hasher, "queued")), { timeout: pageWaitMs }).toBe("0");
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).stillTheSamePage)).toBe(true);
  });

  it("cancels a running task from its page: it ends CANCELLED", async () => {
    const task = await client.submitTask(reportService.methods.generate, {
      title: "cancel me",
      sections: 200,
      sectionMs: 200,
    });
    await open(page, `#/tasks/${task.id}`);
    const state = page.locator("[data-state]");
    await expect.poll(() => text(state), { timeout: pageWaitMs }).toBe("RUNNING");
    await page.getByRole("button", { name: "Cancel task" }).click();
    const dialog = page.getByRole("dialog", { name: "Cancel this task?" });
    await dialog.getByRole("button", { name: "Cancel the task" }).click();
    await expect.poll(() => text(state), { timeout: pageWaitMs }).toBe("CANCELLED");
    expect((await client.getTask(task.id)).state).toBe(TaskState.CANCELLED);
    // Its history is on the page: submitted by the key's name, started, then ended.
    await page.getByText("Ended CANCELLED", { exact: true }).waitFor();
    await page.getByText("by operator", { exact: true }).waitFor();
  });

  it("retries a dead letter from the page: the task runs again", async () => {
    const task = await client.submitTask(probeService.methods.run, { label: "doomed", nonRetryable: true });
    await expect(task.result()).rejects.toThrow(/doomed cannot work/);
    await poll(() => client.queues.getDeadLetter(task.id).catch(() => undefined));
    healed.add("doomed");
    await open(page, "#/queues");
    await queueCard(page, "probe").getByRole("link", { name: "Dead letters of probe: 1" }).click();
    await page.getByRole("heading", { name: "Dead letters of probe" }).waitFor();
    await page.getByRole("checkbox", { name: `Select ${task.id}` }).check();
    await page.getByRole("button", { name: "Retry selected (1)" }).click();
    const dialog = page.getByRole("dialog", { name: "Retry 1 dead letter of probe?" });
    await dialog.getByRole("button", { name: "Retry 1 dead letter" }).click();
    expect(await client.task(task.id, probeService.methods.run.output).result()).toMatchObject({ label: "doomed" });
    expect(attempts.get("doomed")).toBe(2);
    await page.getByText("No dead letters.").waitFor({ timeout: pageWaitMs });
  });

  it("submits a task from the form generated from its request message, then shows its result", async () => {
    await open(page, "#/submit/hasher/Digest");
    await page.getByLabel("text").fill("hello");
    await page.getByLabel("rounds").fill("3");
    // The form's request, as JSON to edit further: what it submits then.
    await page.getByRole("button", { name: "Edit as JSON" }).click();
    expect(JSON.parse(await page.getByLabel("The request as Protobuf JSON").inputValue())).toEqual({
      text: "hello",
      rounds: 3,
    });
    await page.getByRole("button", { name: "Submit task" }).click();
    await page.waitForURL(/#\/tasks\/hasher\./);
    await expect.poll(() => text(page.locator("[data-state]")), { timeout: pageWaitMs }).toBe("SUCCEEDED");
    await page.getByText(exampleDigest("hello", 3)).waitFor();
  });

  it("finds tasks by a searchable request field", async () => {
    const needle = await client.submitTask(reportService.methods.generate, { title: "needle", sections: 1 });
    await client.submitTask(reportService.methods.generate, { title: "hay", sections: 1 });
    await open(page, "#/tasks");
    const filters = page.getByRole("form", { name: "Filter tasks" });
    await filters.getByLabel("Worker type").selectOption("reports");
    await filters.getByLabel("Request field").selectOption("title");
    await filters.getByLabel("Field value").fill("needle");
    await filters.getByRole("button", { name: "Apply filters" }).click();
    const rows = page.getByRole("list", { name: "Tasks" }).getByRole("link");
    await expect
      .poll(() => rows.allTextContents(), { timeout: pageWaitMs })
      .toEqual([expect.stringContaining(needle.id)]);
  });

  it("keeps few rows in the DOM while scrolling through thousands of tasks", { timeout: 180_000 }, async () => {
    const total = 3000;
    const submitted = await client.submitMany(
      hashService.methods.digest,
      Array.from({ length: total }, (_, i) => ({ request: { text: `many ${i}` } })),
    );
    expect(submitted.failed).toBe(0);
    await open(page, "#/tasks?type=hasher");
    const list = page.locator(".virtual-list");
    const footer = page.locator(".virtual-footer");
    let mostRows = 0;
    for (let round = 0; round < 100; round++) {
      mostRows = Math.max(mostRows, await page.locator(".virtual-row").count());
      if ((await text(footer)).includes("the end of the list")) break;
      const loaded = await text(footer);
      await list.evaluate((element) => {
        element.scrollTop = element.scrollHeight;
      });
      await expect.poll(() => text(footer), { timeout: pageWaitMs }).not.toBe(loaded);
    }
    expect(await text(footer)).toMatch(/^[\d,.\s]+ tasks, the end of the list\.$/);
    expect(Number((await text(footer)).replace(/\D/g, ""))).toBeGreaterThanOrEqual(total);
    expect(mostRows).toBeGreaterThan(5);
    expect(mostRows).toBeLessThan(80);
    // Every task ran: the queue is empty again.
    await poll(async () => {
      const queue = await client.queues.getQueue("hasher");
      return queue.queued + queue.running === 0n ? true : undefined;
    }, 120_000);
  });

  it("shows a parent's children, counted, and a child's parent, linked", async () => {
    const parent = await client.submitTask(familyService.methods.fan, { children: 3 });
    expect(await parent.result()).toMatchObject({ spawned: 3n, ended: 3n });
    await open(page, `#/tasks/${parent.id}`);
    await expect.poll(() => text(page.locator("dd[data-children]")), { timeout: pageWaitMs }).toBe("3 of 3 ended");
    const child = (await client.listTasks({ workerType: "probe", pageSize: 10 })).tasks.find(
      (t) => t.parentTaskId === parent.id,
    );
    await open(page, `#/tasks/${child?.taskId}`);
    const link = page.getByRole("link", { name: parent.id });
    await link.waitFor({ timeout: pageWaitMs });
    await link.click();
    await expect.poll(() => text(page.locator("dd[data-children]")), { timeout: pageWaitMs }).toBe("3 of 3 ended");
  });

  it("shows a read-only key no action buttons", async () => {
    const running = await client.submitTask(reportService.methods.generate, {
      title: "watched",
      sections: 100,
      sectionMs: 200,
    });
    const failed = await client.submitTask(probeService.methods.run, { label: "stays dead", nonRetryable: true });
    await expect(failed.result()).rejects.toThrow(/cannot work/);
    const viewer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const tab = await viewer.newPage();
      await signIn(tab, viewerKey);
      const actions = /pause|resume|purge|retry|cancel|submit/i;
      await open(tab, "#/queues");
      await queueCard(tab, "hasher").waitFor({ timeout: pageWaitMs });
      expect(await tab.getByRole("button", { name: actions }).count()).toBe(0);
      expect(await tab.getByRole("link", { name: actions }).count()).toBe(0);
      await open(tab, `#/tasks/${running.id}`);
      await expect.poll(() => text(tab.locator("[data-state]")), { timeout: pageWaitMs }).toMatch(/PENDING|RUNNING/);
      expect(await tab.getByRole("button", { name: actions }).count()).toBe(0);
      await open(tab, `#/tasks/${failed.id}`);
      await expect.poll(() => text(tab.locator("[data-state]")), { timeout: pageWaitMs }).toBe("FAILED");
      expect(await tab.getByRole("button", { name: actions }).count()).toBe(0);
      await open(tab, "#/dead-letters/probe");
      await tab.getByRole("link", { name: failed.id }).waitFor({ timeout: pageWaitMs });
      expect(await tab.getByRole("button", { name: actions }).count()).toBe(0);
      expect(await tab.getByRole("checkbox").count()).toBe(0);
      // Without the buttons, a call with the page's key is refused by the gateway all the same.
      await expect(
        tab.evaluate(async (id) => {
          const response = await fetch("/taskwire.v1.TaskService/CancelTask", {
            method: "POST",
            headers: {
              "content-type": "application/json",
              authorization: `Bearer ${(globalThis as unknown as PageGlobals).sessionStorage.getItem("taskwire.credential")}`,
            },
            body: JSON.stringify({ taskId: id }),
          });
          return response.status;
        }, running.id),
      ).resolves.toBe(403);
    } finally {
      await viewer.close();
      await client.cancelTask(running.id);
    }
  });

  it("fits a phone's width on every page, without scrolling sideways", { timeout: 60_000 }, async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
    try {
      const tab = await phone.newPage();
      await signIn(tab, operatorKey);
      const { taskId } = (await client.listTasks({ workerType: "reports", pageSize: 1 })).tasks[0] ?? {};
      for (const hash of [
        "#/workers",
        "#/tasks?type=hasher",
        `#/tasks/${taskId}`,
        "#/dead-letters/probe",
        "#/submit/reports/Generate",
        "#/queues",
      ]) {
        await open(tab, hash);
        const overflow = await tab.evaluate(() => {
          const page = globalThis as unknown as PageGlobals;
          return page.document.documentElement.scrollWidth - page.innerWidth;
        });
        expect(overflow, hash).toBeLessThanOrEqual(0);
      }
      await queueCard(tab, "hasher").waitFor({ timeout: pageWaitMs });
      await tab.screenshot({ path: join(repoRoot, "docs/console-phone.png") });
    } finally {
      await phone.close();
    }
  });

  it("saves the queues page with its throughput for the README", async () => {
    await open(page, "#/queues");
    await queueCard(page, "hasher").locator("path.tp-succeeded").waitFor({ timeout: pageWaitMs });
    await page.screenshot({ path: join(repoRoot, "docs/console.png") });
  });
});
