/**
 * When to reconnect: the backoff delay, and what a failed attempt leads to (retry after a
 * delay, refresh the token first, or give up).
 */

import type { BackoffOptions } from "./types";
import { PiCloudError } from "./endpoint";

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  initialMs: 1000,
  factor: 2,
  maxMs: 30000,
  jitter: 0.2,
};

/**
 * The delay before reconnect attempt `attempt` (1 for the first retry after a failure):
 * `min(maxMs, initialMs * factor^(attempt-1))`, less up to `jitter` of it at random.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const factor = options.factor ?? DEFAULT_BACKOFF.factor;
  const maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? DEFAULT_BACKOFF.jitter));
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(maxMs, initialMs * Math.pow(factor, exponent));
  return Math.round(base * (1 - jitter * random()));
}

/** What to do after a failed attempt. */
export type NextStep =
  | { action: "close" }
  | { action: "refresh-token"; delayMs: number }
  | { action: "retry"; delayMs: number };

/** 4xx other than 401 (token), 408 (timeout) and 429 (rate limit) will not get better. */
export function isFatal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 401 && status !== 408 && status !== 429;
}

/**
 * The reconnect schedule of one subscription. Attempts are counted from the last
 * successful open; a server `retry:` replaces the initial delay.
 */
export class ReconnectSchedule {
  /** Failed attempts since the last successful open. */
  private failures = 0;
  private unauthorizedInARow = 0;
  private serverRetryMs: number | undefined;

  constructor(
    private readonly backoff: BackoffOptions | undefined,
    /** Whether a 401 can be answered with a fresh token (`getToken` or `onTokenExpired`). */
    private readonly canRefreshToken: boolean,
  ) {}

  /** The number of the attempt about to start. */
  get nextAttempt(): number {
    return this.failures + 1;
  }

  /** The number of the attempt that failed last. */
  get failedAttempts(): number {
    return this.failures;
  }

  /** The stream opened: the schedule starts over. */
  opened(): void {
    this.failures = 0;
    this.unauthorizedInARow = 0;
  }

  /** The server sent `retry: ms`. */
  serverRetry(ms: number): void {
    this.serverRetryMs = ms;
  }

  /** Counts a failed attempt and says what comes next. */
  failed(failure: unknown): NextStep {
    this.failures += 1;
    if (failure instanceof PiCloudError && failure.status === 401) {
      if (!this.canRefreshToken) return { action: "close" };
      this.unauthorizedInARow += 1;
      // Retry at once with the fresh token; back off if that is refused too.
      const delayMs = this.unauthorizedInARow === 1 ? 0 : this.delay(this.unauthorizedInARow - 1);
      return { action: "refresh-token", delayMs };
    }
    if (failure instanceof PiCloudError && isFatal(failure.status)) return { action: "close" };
    this.unauthorizedInARow = 0;
    return { action: "retry", delayMs: this.delay(this.failures) };
  }

  private delay(attempt: number): number {
    return backoffDelay(attempt, {
      ...this.backoff,
      ...(this.serverRetryMs !== undefined ? { initialMs: this.serverRetryMs } : {}),
    });
  }
}
