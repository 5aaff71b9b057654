import { registerHooks } from 'node:module';

/**
 * @actions/workflow-parser imports its JSON schema without `with { type: 'json' }`, which Node
 * refuses in ES modules. This hook adds the attribute to JSON imports inside node_modules.
 */
registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    if (resolved.url.endsWith('.json') && resolved.url.includes('/node_modules/')) {
      return { ...resolved, importAttributes: { ...context.importAttributes, type: 'json' } };
    }
    return resolved;
  },
});
