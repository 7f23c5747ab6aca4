import { describe, expect, inject, it } from "vitest";
import { PiCloudError, createClient } from "../../src/index";

const app = inject("picloud");

const appValidator = {
  parse(input: unknown): { id: string; slug: string; name: string } {
    const row = input as { id?: unknown; slug?: unknown; name?: unknown } | null;
    if (
      typeof row?.id !== "string" ||
      typeof row.slug !== "string" ||
      typeof row.name !== "string"
    ) {
      throw new TypeError("not an app");
    }
    return { id: row.id, slug: row.slug, name: row.name };
  },
};

describe("endpoint against a running PiCloud", () => {
  it("reads typed JSON with a validator", async () => {
    const client = createClient({ baseUrl: app.url, apiKey: app.adminKey });
    const got = await client.endpoint(`/api/v1/apps/${app.appId}`).get({ validate: appValidator });
    expect(got).toEqual({ id: app.appId, slug: app.slug, name: "client integration tests" });
  });

  it("surfaces the server's error envelope as PiCloudError", async () => {
    const anonymous = createClient({ baseUrl: app.url });
    const unauthorized = await anonymous
      .endpoint("/api/v1/apps")
      .get()
      .catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(PiCloudError);
    expect(unauthorized).toMatchObject({ status: 401, code: "unauthorized" });

    const admin = createClient({ baseUrl: app.url, apiKey: app.adminKey });
    const conflict = await admin
      .endpoint("/api/v1/apps")
      .post({ slug: app.slug, name: "again" })
      .catch((e: unknown) => e);
    expect(conflict).toMatchObject({ status: 409, code: "conflict" });
    expect((conflict as PiCloudError).message).not.toBe("");

    const missing = await admin
      .endpoint("/api/v1/no-such-route")
      .get()
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
  });
});
