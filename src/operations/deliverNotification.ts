import { channelRequest, emailContent } from '../core/channelRequests.ts';
import { channelSecretValues, type ChannelSettings } from '../core/channelSettings.ts';
import { notificationMessage, type PayloadView } from '../core/notificationMessage.ts';
import { OutboundAddressRefused, type GuardedRequestInit } from '../net/outboundGuard.ts';
import { BACKSTOP_VERSION } from '../version.ts';
import { sendEmail } from './sendEmail.ts';

/**
 * One notification to one channel, as every notification is sent: the message decided once
 * (src/core/notificationMessage.ts), written out for the channel's kind
 * (src/core/channelRequests.ts) and sent through the outbound guard. The notifier delivers its
 * outbox with it; a test notification is one call of it.
 */

/** guardedFetch: receivers are reached only at addresses the outbound guard allows. */
export type Fetch = (url: string, init: GuardedRequestInit) => Promise<Response>;

export interface DeliveryInput {
  id: number | string;
  event: string;
  payload: Record<string, unknown>;
  /** The first failure of the target's current failing streak, when the catalog knows it. */
  failingSince?: string | null;
}

export interface DeliveryOptions {
  timeoutMs: number;
  /** The dashboard's public address, for links in messages (BACKSTOP_PUBLIC_URL). */
  publicUrl?: string | null;
}

/**
 * One delivery to one channel. Null error on success (a 2xx answer, or an e-mail the SMTP
 * server accepted), otherwise what went wrong, never a URL, token, password or secret.
 * `status` is the receiver's HTTP status when it answered.
 */
export async function deliverToChannel(
  doFetch: Fetch,
  delivery: DeliveryInput,
  settings: ChannelSettings,
  options: DeliveryOptions,
): Promise<{ error: string | null; status: number | null }> {
  const document = { deliveryId: delivery.id, ...delivery.payload };
  const message = notificationMessage(document as PayloadView, { publicUrl: options.publicUrl ?? null, failingSince: delivery.failingSince ?? null });
  const timeoutMs = options.timeoutMs;
  if (settings.kind === 'email') {
    try {
      await sendEmail(settings, emailContent(message), { timeoutMs });
      return { error: null, status: null };
    } catch (error) {
      return { error: redact(describeFailure(error, timeoutMs), settings), status: null };
    }
  }
  const request = channelRequest(settings, { id: delivery.id, event: delivery.event, document }, message, {
    userAgent: `backstop/${BACKSTOP_VERSION}`,
    timestamp: String(Math.floor(Date.now() / 1000)),
  });
  try {
    const response = await doFetch(request.url, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text().catch(() => '');
    if (response.status >= 200 && response.status < 300) {
      // The Bot API says whether it sent the message in its answer too.
      if (settings.kind === 'telegram' && telegramRefused(text)) return { error: redact(`Telegram refused: ${text.slice(0, 200)}`, settings, request.url), status: response.status };
      return { error: null, status: response.status };
    }
    return { error: redact(`HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, settings, request.url), status: response.status };
  } catch (error) {
    return { error: redact(describeFailure(error, timeoutMs), settings, request.url), status: null };
  }
}

function telegramRefused(text: string): boolean {
  try {
    return (JSON.parse(text) as { ok?: unknown }).ok === false;
  } catch {
    return false;
  }
}

/** What a request that threw went through, in words, with its secrets (the URL first) taken out: for requests that are no channel's (heartbeat pings). */
export function deliveryError(error: unknown, timeoutMs: number, [url, ...others]: (string | undefined)[]): string {
  let text = describeFailure(error, timeoutMs);
  if (url) text = text.split(url).join('<channel url>');
  for (const secret of others) if (secret) text = text.split(secret).join('*****');
  return text;
}

function describeFailure(error: unknown, timeoutMs: number): string {
  const err = error as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError' || err.code === 'ETIMEDOUT') return `no answer within ${timeoutMs} ms`;
  // Refused before connecting (a loopback or private address): the refusal says what to set.
  if (error instanceof OutboundAddressRefused) return error.message;
  if (err.cause instanceof OutboundAddressRefused) return err.cause.message;
  const cause = err.cause?.code ?? err.cause?.message;
  return `${err.message}${cause ? ` (${cause})` : ''}`;
}

/** Whatever a receiver or a library said, without the channel's secrets (a Telegram token sits in the URL path). */
function redact(text: string, settings: ChannelSettings, url?: string): string {
  let result = url ? text.split(url).join('<channel url>') : text;
  for (const secret of secretFragments(settings)) result = result.split(secret).join('*****');
  return result;
}

/**
 * The secrets, and the path and query of a secret URL on their own: a webhook URL's key is in its
 * path (Discord's token, Teams' signature), and a receiver may repeat the path without the host.
 */
function secretFragments(settings: ChannelSettings): string[] {
  const fragments = channelSecretValues(settings);
  if (settings.url !== undefined) {
    try {
      const { pathname, search } = new URL(settings.url);
      for (const part of [`${pathname}${search}`, pathname]) if (part.length >= 8) fragments.push(part);
    } catch {
      // Not a URL: the whole value is redacted above.
    }
  }
  return fragments.sort((a, b) => b.length - a.length);
}
