/** Calling user callbacks from inside the stream's loop. */

/**
 * Runs `fn`; a throwing callback must not break the stream, so its error is reported the
 * way the platform reports uncaught errors, outside the stream's loop.
 */
export function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}
