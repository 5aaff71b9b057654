// @ts-check
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

/**
 * @template T
 * @typedef {object} Resource
 * @property {T | undefined} data
 * @property {any} error
 * @property {boolean} loading
 * @property {() => Promise<void>} reload
 * @property {(update: T | ((previous: T | undefined) => T | undefined)) => void} setData
 */

/**
 * Loads something asynchronously and keeps it: {data, error, loading, reload, setData}.
 * A reload that finishes after a newer one started is dropped, so a slow answer never
 * overwrites a fresh one.
 * @template T
 * @param {() => Promise<T>} load
 * @param {unknown[]} deps
 * @returns {Resource<T>}
 */
export function useResource(load, deps) {
  const [state, setState] = useState(/** @type {{ data: T | undefined, error: any, loading: boolean }} */ ({ data: undefined, error: null, loading: true }));
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setState((previous) => ({ ...previous, loading: true }));
    try {
      const data = await load();
      if (mine === generation.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === generation.current) setState((previous) => ({ ...previous, error, loading: false }));
    }
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  const setData = useCallback(
    (/** @type {T | ((previous: T | undefined) => T | undefined)} */ update) =>
      setState((previous) => ({ ...previous, data: typeof update === 'function' ? /** @type {(previous: T | undefined) => T | undefined} */ (update)(previous.data) : update })),
    [],
  );
  return { ...state, reload, setData };
}

/** The current time, refreshed every `everyMs`: relative ages ("5 min ago") stay true. */
export function useNow(everyMs = 15_000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

/**
 * Sets the document title and moves focus to the page heading, for keyboard and screen-reader users.
 * @param {string | undefined} title
 */
export function usePageTitle(title) {
  useEffect(() => {
    document.title = title ? `${title} · Backstop` : 'Backstop';
  }, [title]);
}
