/** Publishing with a subscriber token (no API key: safe in a browser). */

import type { FetchLike, Published, TokenResult } from "./types";
import { errorFromResponseSafe } from "./endpoint";
import { bearer } from "./bearer";
import { topicUrl } from "./urls";

/** What a subscription (or a token publish) needs from its client. */
export interface SubscribeContext {
  baseUrl: string;
  fetch: FetchLike;
}

const publishedValidator = {
  parse(input: unknown): Published {
    const reply = input as Partial<Published> | null;
    if (typeof reply?.id !== "number" || typeof reply.published_at !== "string") {
      throw new TypeError("not a publish reply");
    }
    return { id: reply.id, published_at: reply.published_at };
  },
};

/**
 * Publish one message to `topic` on the app at `ctx.baseUrl` with a subscriber token that
 * grants publish (`POST /realtime/topics/{topic}/messages`). No API key is involved, so
 * this is safe in a browser.
 */
export async function publishWithToken(
  ctx: SubscribeContext,
  topic: string,
  message: unknown,
  token: TokenResult,
  signal?: AbortSignal,
): Promise<Published> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = bearer(token);
  const response = await ctx.fetch(`${topicUrl(ctx.baseUrl, topic)}/messages`, {
    method: "POST",
    headers,
    body: JSON.stringify({ message }),
    ...(signal ? { signal } : {}),
  });
  if (!response.ok) throw await errorFromResponseSafe(response);
  return publishedValidator.parse(await response.json());
}
