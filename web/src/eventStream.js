// @ts-check
import { errorOf } from './api.js';
import { storedToken } from './session.js';

/**
 * Server-Sent Events over fetch(): a browser EventSource cannot send the Authorization header,
 * so the stream is read and parsed here (the text/event-stream format: `field: value` lines,
 * a blank line ends an event). A dropped connection is retried after the server's `retry:`
 * delay with Last-Event-ID, so no event is missed; an `end` event or a 204 stops it.
 *
 * Handlers: onEvent({id, event, data}) for every event (data parsed as JSON), onEnd(data),
 * onConnected(boolean) when the connection opens or drops.
 * @param {string} path
 * @param {{ lastEventId?: string | null, onEvent: (message: { id: string | null, event: string, data: any }) => void, onEnd?: (data: any) => void, onConnected?: (connected: boolean) => void }} handlers
 */
export function openEventStream(path, { lastEventId = null, onEvent, onEnd = () => {}, onConnected = () => {} }) {
  const controller = new AbortController();
  /** @type {string | null} */
  let lastId = lastEventId;
  let retryMs = 2000;
  let stopped = false;

  const pause = (/** @type {number} */ ms) =>
    new Promise(
      /** @param {(value?: unknown) => void} resolve */ (resolve) => {
        const timer = setTimeout(resolve, ms);
        controller.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      },
    );

  /** @typedef {{ id: string | null, event: string, data: string, hasData: boolean }} Message */
  const dispatch = (/** @type {Message} */ message) => {
    if (message.id !== null) lastId = message.id;
    if (!message.hasData) return false;
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      data = message.data;
    }
    if (message.event === 'end') {
      onEnd(data);
      return true;
    }
    onEvent({ id: message.id, event: message.event, data });
    return false;
  };

  const readOnce = async () => {
    /** @type {Record<string, string>} */
    const headers = { accept: 'text/event-stream' };
    // Signed in with the provider, the session cookie goes along by itself.
    const token = storedToken();
    if (token) headers.authorization = `Bearer ${token}`;
    if (lastId !== null && lastId !== undefined) headers['last-event-id'] = String(lastId);
    const response = await fetch(path, { headers, signal: controller.signal, cache: 'no-store' });
    if (response.status === 401) {
      // The server's reason (a sign-in ended by the provider, a revoked token), not a guess.
      await errorOf(response);
      return true;
    }
    if (response.status === 204) {
      onEnd(null);
      return true;
    }
    if (!response.ok || !response.body) throw new Error(`event stream answered ${response.status}`);
    onConnected(true);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    /** @type {Message} */
    let message = { id: null, event: 'message', data: '', hasData: false };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') {
          if (dispatch(message)) return true;
          message = { id: null, event: 'message', data: '', hasData: false };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'data') {
          message.data += (message.hasData ? '\n' : '') + text;
          message.hasData = true;
        } else if (field === 'event') message.event = text;
        else if (field === 'id') message.id = text;
        else if (field === 'retry' && /^\d+$/.test(text)) retryMs = Number(text);
      }
    }
  };

  void (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        if (await readOnce()) return;
        failures = 0;
      } catch {
        if (stopped) return;
        failures++;
      }
      onConnected(false);
      // Back off while the server is away; reconnect promptly after a normal close.
      await pause(Math.min(retryMs * 2 ** Math.min(failures, 4), 30_000));
    }
  })();

  return {
    close() {
      stopped = true;
      controller.abort();
    },
  };
}
