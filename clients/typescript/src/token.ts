/** The token of one subscription: fetched before each connection, refreshed on a 401. */

import type { SubscribeOptions, TokenResult } from "./types";

type TokenOptions = Pick<SubscribeOptions, "token" | "getToken" | "onTokenExpired">;

export class SubscriptionToken {
  private token: TokenResult;

  constructor(private readonly options: TokenOptions) {
    this.token = options.token;
  }

  /** Whether a 401 can be answered with a fresh token. */
  get refreshable(): boolean {
    return this.options.getToken !== undefined || this.options.onTokenExpired !== undefined;
  }

  /** The token for the next connection (`getToken`'s, when given). */
  async forConnection(): Promise<TokenResult> {
    if (this.options.getToken) this.token = await this.options.getToken();
    return this.token;
  }

  /** The token for a publish: `getToken`'s when given, else the current one. */
  async forPublish(): Promise<TokenResult> {
    return this.options.getToken ? await this.options.getToken() : this.token;
  }

  /** After a 401: asks `onTokenExpired` for a fresh token (its failure goes to `reportError`). */
  async refresh(reportError: (error: unknown) => void): Promise<void> {
    try {
      const fresh = await this.options.onTokenExpired?.();
      if (typeof fresh === "string") this.token = fresh;
    } catch (error) {
      reportError(error);
    }
  }
}
