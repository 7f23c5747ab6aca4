/**
 * Starts one real PiCloud server for the integration tests and stops it at the end.
 * The tests reach the app by its host name: an app domain `127.0.0.1` (hosts have no
 * port), because `<slug>.localhost` does not resolve everywhere outside browsers.
 */

import type { TestProject } from "vitest/node";
import { startServer } from "./server";
import { setUpApp } from "./fixtures";
import type { TestApp } from "./fixtures";

declare module "vitest" {
  export interface ProvidedContext {
    picloud: TestApp;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startServer();
  try {
    project.provide("picloud", await setUpApp(server.url, server.adminKey));
  } catch (error) {
    await server.dispose();
    throw error;
  }
  return async () => {
    const code = await server.stop();
    if (code !== 0) console.error(`picloud serve exited with ${code}:\n${server.log()}`);
    await server.dispose();
  };
}
