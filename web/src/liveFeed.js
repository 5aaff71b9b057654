// @ts-check
import { useEffect, useRef, useState } from 'preact/hooks';
import { openEventStream } from './eventStream.js';
import { html } from './html.js';

/**
 * Every run's events, live (GET /api/v1/events as Server-Sent Events). `onEvent` gets each
 * event; `onReady` fires when the stream is open, including after a reconnect, which is when
 * a page reloads what it shows so that nothing between the two is lost; `onProgress` gets
 * each `progress` event ({runId, targetName, runKind, status, progress}) of work under way.
 * Returns whether the stream is connected.
 * @param {(event: import('./types').FeedEvent) => void} onEvent
 * @param {(data: unknown) => void} [onReady]
 * @param {(event: { runId: string, targetName: string, runKind: string, status: string, progress: any }) => void} [onProgress]
 */
export function useLiveFeed(onEvent, onReady = () => {}, onProgress = () => {}) {
  const handlers = useRef({ onEvent, onReady, onProgress });
  handlers.current = { onEvent, onReady, onProgress };
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    const stream = openEventStream('/api/v1/events', {
      onConnected: setConnected,
      onEvent: ({ event, data }) => {
        if (event === 'ready') handlers.current.onReady(data);
        else if (event === 'message') handlers.current.onEvent(data);
        else if (event === 'progress') handlers.current.onProgress(data);
      },
    });
    return () => stream.close();
  }, []);
  return connected;
}

/** @param {{ connected: boolean }} props */
export function LiveIndicator({ connected }) {
  return connected
    ? html`<span class="live live-on" title="Updates arrive as they happen">● Live</span>`
    : html`<span class="live live-off" title="Reconnecting to the server">○ Reconnecting</span>`;
}
