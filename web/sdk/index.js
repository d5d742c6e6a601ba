// The SDK's entry module for bundlers (import from this file); stoa dev serves the same modules as one file,
// /sdk/stoa.js.
export * from './sframe.js';
export * from './media.js';
export * from './e2ee.js';
export * from './client.js';
