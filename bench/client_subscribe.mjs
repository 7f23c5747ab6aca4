// Consumes N messages of one topic with @picloud/client (the built package) from the
// start of its log and prints the seconds it took, as JSON. Run by client_subscribe.py.
import { createClient } from "../clients/typescript/dist/index.js";

const [baseUrl, topic, count] = process.argv.slice(2);
const want = Number(count);
const client = createClient({ baseUrl });
let seen = 0;
let lastId = "";
const started = performance.now();
await new Promise((resolve, reject) => {
  const stop = client.subscribe(
    topic,
    (m) => {
      seen += 1;
      lastId = m.id;
      if (seen === want) {
        stop();
        resolve();
      }
    },
    { lastEventId: "0", onError: reject },
  );
});
const seconds = (performance.now() - started) / 1000;
console.log(JSON.stringify({ seconds, messages: seen, last_id: lastId }));
process.exit(0);
