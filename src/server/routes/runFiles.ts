import type { FastifyInstance } from 'fastify';
import { openBackupFile } from '../../operations/openBackupFile.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { ARTIFACT_FILE_NAME } from '../../operations/reportedArtifact.ts';
import { errorResponses, uuid } from '../responseSchemas.ts';

/** `filename*` (RFC 6266/8187) for any name, and a plain ASCII `filename` for old clients. */
function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export function registerRunFileRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { id: string; '*': string } }>(
    '/api/v1/runs/:id/files/*',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['runs'],
        summary: 'Download one file of a backup, streamed through the server',
        description:
          "Only a file the run's record and its manifest both list (`manifest.json` included), read from the folder the manifest binds to the run; any other name is 404. The bytes are hashed as they stream: a file that no longer matches its manifest ends the response with an error instead of completing it. `Repr-Digest` carries the manifest's SHA-256.",
        params: {
          type: 'object',
          required: ['id', '*'],
          additionalProperties: false,
          properties: {
            id: { ...uuid, description: 'Run id.' },
            '*': { type: 'string', minLength: 1, maxLength: 1024, pattern: ARTIFACT_FILE_NAME.source, description: "The file's name as the manifest lists it." },
          },
        },
        response: { 200: { description: "The file's bytes", content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const file = await openBackupFile(ctx.pool, request.params.id, request.params['*']);
      request.log.info({ runId: request.params.id, file: file.name, by: actorOf(request) }, 'backup file downloaded');
      return reply
        .type('application/octet-stream')
        .headers({
          'content-length': String(file.size),
          'content-disposition': contentDisposition(file.fileName),
          'repr-digest': `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`,
        })
        .send(file.stream);
    },
  );
}
