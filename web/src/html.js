// @ts-check
import { h } from 'preact';
import htm from 'htm';

/** JSX-like templates without a build step: html`<p class=${x}>…</p>`. */
export const html = htm.bind(h);
