import { useEffect, useRef, useState } from 'preact/hooks';
import { openEventStream } from './eventStream.js';
import { html } from './html.js';

/**
 * Every run's events, live (GET /api/v1/events as Server-Sent Events). `onEvent` gets each
 * event; `onReady` fires when the stream is open, including after a reconnect, which is when
 * a page reloads what it shows so that nothing between the two is lost. Returns whether the
 * stream is connected.
 */
export function useLiveFeed(onEvent, onReady = () => {}) {
  const handlers = useRef({ onEvent, onReady });
  handlers.current = { onEvent, onReady };
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    const stream = openEventStream('/api/v1/events', {
      onConnected: setConnected,
      onEvent: ({ event, data }) => {
        if (event === 'ready') handlers.current.onReady(data);
        else if (event === 'message') handlers.current.onEvent(data);
      },
    });
    return () => stream.close();
  }, []);
  return connected;
}

export function LiveIndicator({ connected }) {
  return connected
    ? html`<span class="live live-on" title="Updates arrive as they happen">● Live</span>`
    : html`<span class="live live-off" title="Reconnecting to the server">○ Reconnecting</span>`;
}
