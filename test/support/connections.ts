import pg from 'pg';
import { catalogTypes } from '../../src/db/pool.ts';

export interface Connections {
  clients: pg.Client[];
  close(): Promise<void>;
}

/**
 * `count` separate, already connected sessions: concurrent calls made through them race in
 * the server for real, instead of queueing behind each other in one pool slot.
 */
export async function openConnections(url: string, count: number): Promise<Connections> {
  const clients: pg.Client[] = [];
  const close = async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => {})));
  };
  try {
    for (let i = 0; i < count; i++) {
      const client = new pg.Client({ connectionString: url, application_name: `backstop-test-racer-${i}`, types: catalogTypes });
      client.on('error', () => {});
      clients.push(client);
      await client.connect();
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { clients, close };
}
