/**
 * Runs the repository's own PiCloud server (`python -m picloud serve` from the repo's
 * .venv) as a real process on its embedded PostgreSQL, for the integration tests.
 */

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../..");

/** The Python that has picloud installed: $PICLOUD_PYTHON or <repo>/.venv/bin/python. */
export function pythonPath(): string {
  const python = process.env.PICLOUD_PYTHON ?? join(REPO_ROOT, ".venv", "bin", "python");
  if (!existsSync(python)) {
    throw new Error(
      `PiCloud's Python environment is missing: ${python} does not exist. ` +
        "Create it first (scripts/test does: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]').",
    );
  }
  return python;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => {
        if (typeof address === "object" && address !== null) resolvePort(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

export interface ServerOptions {
  dataDir?: string;
  port?: number;
  adminKey?: string;
  env?: Record<string, string>;
}

export interface RunningServer {
  url: string;
  port: number;
  adminKey: string;
  dataDir: string;
  logPath: string;
  /** Stops it with SIGTERM (the server stops its PostgreSQL) and waits for the exit. */
  stop(): Promise<number | null>;
  /** Stops it (if running) and deletes its data directory. */
  dispose(): Promise<void>;
  log(): string;
}

function waitExit(proc: ChildProcess, ms: number): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
    }, ms);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      resolveExit(code);
    });
  });
}

/** Starts PiCloud and resolves once GET /healthz answers 200. */
export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const python = pythonPath();
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "picloud-client-it-"));
  const port = options.port ?? (await freePort());
  const adminKey = options.adminKey ?? `it_${randomBytes(24).toString("hex")}`;
  const logPath = join(dataDir, "serve.log");
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("PICLOUD_") && key !== "DATABASE_URL") {
      env[key] = value;
    }
  }
  Object.assign(env, {
    PICLOUD_DATA_DIR: dataDir,
    PICLOUD_LISTEN: `127.0.0.1:${port}`,
    PICLOUD_ADMIN_KEY: adminKey,
    PICLOUD_REALTIME_HEARTBEAT_SEC: "1",
    PYTHONUNBUFFERED: "1",
    ...options.env,
  });
  const out = openSync(logPath, "a");
  const proc = spawn(python, ["-m", "picloud", "serve"], {
    cwd: dataDir,
    env,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  const url = `http://127.0.0.1:${port}`;
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  const stop = async (): Promise<number | null> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    return waitExit(proc, 30_000);
  };
  const server: RunningServer = {
    url,
    port,
    adminKey,
    dataDir,
    logPath,
    stop,
    log,
    dispose: async () => {
      await stop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`picloud serve exited (${proc.exitCode ?? proc.signalCode}):\n${log()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return server;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`picloud serve not healthy after 90 s:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
