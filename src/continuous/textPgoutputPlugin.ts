import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

const keepText = (raw: unknown) => raw;

/**
 * pgoutput as pg-logical-replication decodes it, but with every value kept in the text form
 * PostgreSQL sent: the library would parse each through node-postgres's type parsers (dates
 * to Date, json to objects, floats to numbers), which loses what a restore must write back
 * exactly. A relation's columns carry the parser its later tuples use, so replacing it as
 * each Relation message is read is enough.
 */
export class TextPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const message = super.parse(buffer) as Pgoutput.Message;
    if (message.tag === 'relation') for (const column of message.columns) column.parser = keepText;
    return message;
  }
}
