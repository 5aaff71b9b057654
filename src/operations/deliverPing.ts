import { BACKSTOP_VERSION } from '../version.ts';
import { deliveryError, type Fetch } from './deliverNotification.ts';

/**
 * A heartbeat ping, as Healthchecks.io's pinging API reads one: the ping URL alone signals
 * success, `/start` a start and `/fail` a failure; `rid` (the run id) pairs a start with its end,
 * so the check measures the backup's duration and concurrent runs do not mix. The body (at
 * most a few hundred bytes of text) is what the check's log shows.
 */
export function pingRequestUrl(pingUrl: string, event: string, runId: string | null): string {
  const url = new URL(pingUrl);
  const suffix = event === 'ping_start' ? '/start' : event === 'ping_fail' ? '/fail' : '';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`;
  if (runId) url.searchParams.set('rid', runId);
  return url.toString();
}

export async function deliverPing(
  doFetch: Fetch,
  delivery: { event: string; runId: string | null; payload: Record<string, unknown> },
  pingUrl: string,
  timeoutMs: number,
): Promise<{ error: string | null }> {
  const error = delivery.payload.error as { code?: string; message?: string } | null | undefined;
  const body = `backstop run ${delivery.runId ?? ''}: ${String(delivery.payload.status ?? '')}${error ? ` [${error.code}] ${error.message ?? ''}` : ''}`.slice(0, 1000);
  try {
    const response = await doFetch(pingRequestUrl(pingUrl, delivery.event, delivery.runId), {
      method: 'POST',
      headers: { 'content-type': 'text/plain; charset=utf-8', 'user-agent': `backstop/${BACKSTOP_VERSION}` },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.text().catch(() => '');
    if (response.status >= 200 && response.status < 300) return { error: null };
    return { error: `HTTP ${response.status}` };
  } catch (caught) {
    return { error: deliveryError(caught, timeoutMs, [pingUrl]) };
  }
}
