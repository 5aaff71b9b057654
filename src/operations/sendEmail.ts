import { isIP } from 'node:net';
import nodemailer from 'nodemailer';
import type { ChannelSettings } from '../core/channelSettings.ts';
import { resolveGuardedHost } from '../net/outboundGuard.ts';
import { BACKSTOP_VERSION } from '../version.ts';

/**
 * One e-mail through an SMTP server, with nodemailer. The server's name is resolved and judged
 * by the outbound guard first and nodemailer connects to that very address (the name still
 * goes to TLS for SNI and the certificate check), so an SMTP host is held to the same rule as
 * every webhook. `starttls` requires the upgrade (a server that does not offer it is refused
 * rather than sent a password in clear); `tls` is TLS from the first byte (port 465).
 */
export async function sendEmail(settings: ChannelSettings, mail: { subject: string; text: string }, options: { timeoutMs: number }): Promise<void> {
  const bare = settings.host!.replace(/^\[|\]$/g, '');
  const address = await resolveGuardedHost(bare);
  const security = settings.security ?? 'starttls';
  const port = settings.port ?? (security === 'tls' ? 465 : security === 'starttls' ? 587 : 25);
  const transport = nodemailer.createTransport({
    host: address,
    port,
    secure: security === 'tls',
    requireTLS: security === 'starttls',
    ignoreTLS: security === 'none',
    ...(settings.username !== undefined && settings.password !== undefined ? { auth: { user: settings.username, pass: settings.password } } : {}),
    // SNI and the certificate check go by the name configured, not the address judged.
    ...(isIP(bare) === 0 ? { tls: { servername: bare } } : {}),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    dnsTimeout: options.timeoutMs,
  });
  try {
    await transport.sendMail({
      from: settings.from!,
      to: settings.to!,
      subject: mail.subject,
      text: mail.text,
      headers: { 'X-Mailer': `Backstop ${BACKSTOP_VERSION}` },
    });
  } finally {
    transport.close();
  }
}
