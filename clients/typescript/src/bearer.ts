/**
 * The `Authorization` header value. Its own module because both the JSON calls
 * (`endpoint.ts`) and the token helpers that use them (`auth.ts`) need it.
 */

/** `Authorization` header value for a token or API key. */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}
