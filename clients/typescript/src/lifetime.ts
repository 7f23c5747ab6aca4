/**
 * The life of one subscription: status and error reports, the wait between attempts, and
 * the one way it ends (the caller, the abort signal, or a final failure), which aborts
 * whatever is running and reports "closed" once.
 */

import type { SubscribeOptions, SubscriptionStatus } from "./types";
import { safeCall } from "./callbacks";

type LifetimeOptions = Pick<SubscribeOptions, "onStatus" | "onError" | "signal">;

export class Lifetime {
  private ended = false;
  private connection: AbortController | undefined;
  private sleepTimer: ReturnType<typeof setTimeout> | undefined;
  private wakeSleep: (() => void) | undefined;
  private readonly onAbort = (): void => this.close();

  constructor(private readonly options: LifetimeOptions) {}

  get stopped(): boolean {
    return this.ended;
  }

  /**
   * Follows the abort signal. False when it is already aborted (the subscription is then
   * closed and should not start).
   */
  start(): boolean {
    if (this.options.signal?.aborted) {
      this.close();
      return false;
    }
    this.options.signal?.addEventListener("abort", this.onAbort, { once: true });
    return true;
  }

  status(status: SubscriptionStatus): void {
    if (!this.ended) safeCall(() => this.options.onStatus?.(status));
  }

  reportError(error: unknown): void {
    if (!this.ended) safeCall(() => this.options.onError?.(error));
  }

  /** A new connection's controller: `close` aborts it. */
  newConnection(): AbortController {
    const controller = new AbortController();
    this.connection = controller;
    return controller;
  }

  /** Waits `ms`, or less if the subscription ends meanwhile. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wakeSleep = resolve;
      this.sleepTimer = setTimeout(() => {
        this.sleepTimer = undefined;
        this.wakeSleep = undefined;
        resolve();
      }, ms);
    });
  }

  /** Ends the subscription once: aborts the connection or the wait, reports "closed". */
  close(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.connection?.abort();
    if (this.sleepTimer !== undefined) clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
    this.options.signal?.removeEventListener("abort", this.onAbort);
    safeCall(() =>
      this.options.onStatus?.(error === undefined ? { state: "closed" } : { state: "closed", error }),
    );
  }
}
