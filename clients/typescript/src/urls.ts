/** The realtime URLs on an app's host. */

/** The URL of one stream of several topics on the app's host (`GET /realtime?topic=…`). */
export function streamUrl(baseUrl: string, topics: readonly string[]): string {
  const query = topics.map((t) => `topic=${encodeURIComponent(t)}`).join("&");
  return `${baseUrl.replace(/\/+$/, "")}/realtime?${query}`;
}

/** The realtime URL of a topic on the app's host. */
export function topicUrl(baseUrl: string, topic: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/realtime/topics/${encodeURIComponent(topic)}`;
}
